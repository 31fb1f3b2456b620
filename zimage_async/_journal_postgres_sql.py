"""The PostgreSQL journal's SQL: its schema, statements, and how asyncpg is loaded."""

from __future__ import annotations

import re
import urllib.parse
from types import ModuleType
from typing import Any

from ._exceptions import JournalError
from ._journal_rows import ITEM_COLUMNS, RECORD_COLUMNS

__all__ = [
    "CLAIM",
    "FORMAT",
    "GET",
    "IDLE_IN_TRANSACTION_LIMIT",
    "ITEMS",
    "LIMIT_SETTINGS",
    "LOCK_WAIT_LIMIT",
    "NOW",
    "POOL_SIZE",
    "SCHEMA",
    "SCHEMA_LOCK",
    "SECRET_PARAMETERS",
    "SPEND",
    "SPEND_LOCK",
    "UPDATE",
    "UPSERT",
    "driver_errors",
    "load_asyncpg",
    "set_up_schema",
    "without_password",
    "without_passwords",
]

#: The most connections one process opens to the journal's database.
POOL_SIZE = 4
#: How long (seconds) the server lets a journal session sit idle inside a transaction
#: before it ends the session and so releases its locks (``idle_in_transaction_session_timeout``):
#: a worker stopped in the middle of a journal write (SIGSTOP, a debugger, a paused
#: machine) holds the others up no longer than this. A journal transaction runs for
#: milliseconds; only a stopped or badly stalled process sits in one for half a minute.
IDLE_IN_TRANSACTION_LIMIT = 30.0
#: How long (seconds) a journal statement waits for a lock before it fails with
#: :class:`JournalError` (``lock_timeout``). Twice the idle limit: a stopped worker's
#: session is ended, and the others go on, before any of them gives up; what it bounds is
#: a holder the idle limit does not end (another program's session, a statement that runs on).
LOCK_WAIT_LIMIT = 60.0
#: The server settings of the two limits, and how to read where each comes from.
LIMIT_SETTINGS = (
    "SELECT name, setting, source FROM pg_settings"
    " WHERE name IN ('idle_in_transaction_session_timeout', 'lock_timeout')"
)
#: The advisory lock that serialises begins (and so the spend check) across workers.
SPEND_LOCK = 0x7A696D67  # "zimg"
#: The advisory lock held while the schema is created.
SCHEMA_LOCK = SPEND_LOCK + 1
FORMAT = "zimage-journal/1"
#: The connection URI's query parameters whose values are secrets (libpq's keywords).
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS zimage_journal_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS zimage_creates (
    key text PRIMARY KEY,
    fingerprint text NOT NULL,
    request text NOT NULL,
    model text NOT NULL,
    size text NOT NULL,
    state text NOT NULL,
    base_url text NOT NULL,
    expected_cost double precision,
    credits_reserved double precision,
    task_id text,
    completed_at double precision,
    paths text NOT NULL DEFAULT '[]',
    error_code text,
    error_message text,
    batch_id text,
    item_index integer,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS zimage_creates_state ON zimage_creates (state);
CREATE INDEX IF NOT EXISTS zimage_creates_batch ON zimage_creates (batch_id, item_index);
CREATE INDEX IF NOT EXISTS zimage_creates_task ON zimage_creates (task_id);
CREATE TABLE IF NOT EXISTS zimage_prices (
    model text NOT NULL,
    size text NOT NULL,
    credits double precision NOT NULL,
    seen_at double precision NOT NULL,
    PRIMARY KEY (model, size)
);
CREATE TABLE IF NOT EXISTS zimage_batch_items (
    batch_id text NOT NULL,
    idx integer NOT NULL,
    fingerprint text NOT NULL,
    request text NOT NULL,
    key text NOT NULL,
    claimed_by text,
    lease_until double precision,
    settled boolean NOT NULL DEFAULT false,
    PRIMARY KEY (batch_id, idx)
);
"""

NOW = "SELECT extract(epoch FROM clock_timestamp())::float8"
GET = f"SELECT {RECORD_COLUMNS} FROM zimage_creates WHERE key = $1"  # noqa: S608 (constants)
UPSERT = (
    f"INSERT INTO zimage_creates ({RECORD_COLUMNS}) VALUES"  # noqa: S608 (constants)
    " ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL, '[]', NULL, NULL, $9, $10, $11, $11)"
    " ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, base_url = EXCLUDED.base_url,"
    " expected_cost = EXCLUDED.expected_cost, batch_id = EXCLUDED.batch_id,"
    " item_index = EXCLUDED.item_index, updated_at = EXCLUDED.updated_at"
)
UPDATE = (
    "UPDATE zimage_creates SET state = $1, task_id = COALESCE($2, task_id),"  # noqa: S608
    " credits_reserved = COALESCE($3, credits_reserved),"
    " completed_at = COALESCE($4, completed_at), paths = COALESCE($5, paths),"
    " error_code = COALESCE($6, error_code), error_message = COALESCE($7, error_message),"
    f" updated_at = ({NOW}) WHERE key = $8 RETURNING {RECORD_COLUMNS}"
)
#: The running spend totals and the trigger keeping them, as :mod:`._journal_totals`
#: describes for SQLite. Each total row is written in one order (the whole journal's,
#: then the batch's), so two writers never wait on each other's rows crosswise.
_COUNT = """
CREATE OR REPLACE FUNCTION zimage_spend_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    one_scope text;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.state <> 'rejected' THEN
        FOREACH one_scope IN ARRAY ARRAY['', '#' || OLD.batch_id] LOOP
            UPDATE zimage_spend AS s
            SET known = round(
                    (s.known - COALESCE(OLD.credits_reserved, OLD.expected_cost, 0))::numeric, 9
                ),
                unpriced = s.unpriced
                    - (OLD.credits_reserved IS NULL AND OLD.expected_cost IS NULL)::int,
                creates = s.creates - 1,
                uncertain = s.uncertain - (OLD.state IN ('submitting', 'uncertain'))::int
            WHERE s.scope = one_scope AND s.model = OLD.model AND s.size = OLD.size;
        END LOOP;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.state <> 'rejected' THEN
        INSERT INTO zimage_spend AS s
        SELECT scope, NEW.model, NEW.size, COALESCE(NEW.credits_reserved, NEW.expected_cost, 0),
            (NEW.credits_reserved IS NULL AND NEW.expected_cost IS NULL)::int, 1,
            (NEW.state IN ('submitting', 'uncertain'))::int
        FROM unnest(ARRAY['', '#' || NEW.batch_id]) AS scope WHERE scope IS NOT NULL ORDER BY scope
        ON CONFLICT (scope, model, size) DO UPDATE
        SET known = round((s.known + EXCLUDED.known)::numeric, 9),
            unpriced = s.unpriced + EXCLUDED.unpriced, creates = s.creates + 1,
            uncertain = s.uncertain + EXCLUDED.uncertain;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS zimage_spend_count ON zimage_creates;
CREATE TRIGGER zimage_spend_count
    AFTER INSERT OR UPDATE OF state, credits_reserved, expected_cost, model, size, batch_id
    OR DELETE ON zimage_creates FOR EACH ROW EXECUTE FUNCTION zimage_spend_count();
"""
_TOTALS = (
    """
CREATE TABLE zimage_spend (
    scope text NOT NULL,
    model text NOT NULL,
    size text NOT NULL,
    known double precision NOT NULL DEFAULT 0,
    unpriced bigint NOT NULL DEFAULT 0,
    creates bigint NOT NULL DEFAULT 0,
    uncertain bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, model, size)
);
"""
    + _COUNT
    + """
INSERT INTO zimage_spend
SELECT scope, model, size, round(SUM(COALESCE(credits_reserved, expected_cost, 0))::numeric, 9),
    COUNT(*) FILTER (WHERE credits_reserved IS NULL AND expected_cost IS NULL), COUNT(*),
    COUNT(*) FILTER (WHERE state IN ('submitting', 'uncertain'))
FROM zimage_creates, unnest(ARRAY['', '#' || batch_id]) AS scope
WHERE state <> 'rejected' AND scope IS NOT NULL GROUP BY scope, model, size;
"""
)
#: The totals of batch $2 (NULL: the whole journal) less what the create with key $1
#: adds to them (see :data:`._journal_totals.SPEND`).
SPEND = (
    "SELECT s.model, s.size, s.known - COALESCE(x.known, 0), s.unpriced - COALESCE(x.unpriced, 0),"
    " s.creates - COALESCE(x.creates, 0), s.uncertain - COALESCE(x.uncertain, 0)"
    " FROM zimage_spend s LEFT JOIN (SELECT model, size, batch_id,"
    " COALESCE(credits_reserved, expected_cost, 0) AS known,"
    " (credits_reserved IS NULL AND expected_cost IS NULL)::int AS unpriced, 1 AS creates,"
    " (state IN ('submitting', 'uncertain'))::int AS uncertain"
    " FROM zimage_creates WHERE key = $1 AND state <> 'rejected') x"
    " ON x.model = s.model AND x.size = s.size AND s.scope IN ('', '#' || x.batch_id)"
    " WHERE s.scope = COALESCE('#' || $2::text, '')"
)


async def set_up_schema(db: Any) -> None:
    """Create what the journal lacks (in a transaction holding :data:`SCHEMA_LOCK`).

    The running totals of a journal written before them are summed once, here: the
    trigger is created first, and its lock on ``zimage_creates`` keeps every write out
    until the sums are committed with it.
    """
    had_totals = await db.fetchval(  # in the schema the tables go to, not anywhere on the path
        "SELECT EXISTS (SELECT 1 FROM pg_tables"
        " WHERE schemaname = current_schema() AND tablename = 'zimage_spend')"
    )
    await db.execute(SCHEMA)
    if not had_totals:
        await db.execute(_TOTALS)


ITEMS = (  # noqa: S608 (constants)
    "SELECT {items}, {records} FROM zimage_batch_items i"
    " LEFT JOIN zimage_creates c ON c.key = i.key"
    " WHERE i.batch_id = $1 AND ($2::int[] IS NULL OR i.idx = ANY($2)) ORDER BY i.idx"
).format(
    items=", ".join(f"i.{c.strip()}" for c in ITEM_COLUMNS.split(",")),
    records=", ".join(f"c.{c.strip()}" for c in RECORD_COLUMNS.split(",")),
)
CLAIM = (
    "WITH picked AS ("
    " SELECT idx, claimed_by AS was FROM zimage_batch_items WHERE batch_id = $1 AND NOT settled"
    " AND (claimed_by IS NULL OR lease_until <= $2) AND (NOT $6::boolean OR EXISTS (SELECT 1"
    " FROM zimage_creates c WHERE c.key = zimage_batch_items.key AND c.state <> 'rejected'))"
    " ORDER BY idx LIMIT $3 FOR UPDATE SKIP LOCKED)"
    " UPDATE zimage_batch_items t SET claimed_by = $4, lease_until = $2 + $5"
    " FROM picked WHERE t.batch_id = $1 AND t.idx = picked.idx RETURNING t.idx, picked.was"
)


def load_asyncpg() -> ModuleType:
    try:
        import asyncpg
    except ImportError as exc:
        raise JournalError(
            "a postgresql:// journal needs asyncpg: install zimage-async with its postgres "
            "extra (pip install '.[postgres]' in a checkout), or pip install asyncpg"
        ) from exc
    return asyncpg


def driver_errors(driver: ModuleType) -> tuple[type[BaseException], ...]:
    """Return every exception the driver (or the socket under it) raises for a failure.

    The server's errors, the client's (a closed connection), its internal ones (a
    connection terminated during ``COMMIT`` leaves it "cannot switch to state 15"), and
    the network's.
    """
    return (
        OSError,
        TimeoutError,
        driver.PostgresError,
        driver.InterfaceError,
        driver.InternalClientError,
    )


def without_password(url: str) -> str:
    """Return the URL *url* fit to print: its password, wherever it is, left out.

    The user info loses its ``:password``; the query string loses the parameters that
    hold secrets (``password``, ``sslpassword``). Nothing is parsed beyond that, so a URL
    naming several hosts (``h1:5432,h2:5433``) or a malformed one is redacted all the
    same. Where the user info ends is read generously (at the last ``@`` before the
    path), so a password holding ``@``, ``?`` or ``#`` is left out whole.

    >>> without_password("postgresql://u:pw@h1:5432,h2:5433/db?sslmode=require&password=pw")
    'postgresql://u@h1:5432,h2:5433/db?sslmode=require'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    path_at = rest.find("/")
    authority_end = len(rest) if path_at < 0 else path_at
    at = rest.rfind("@", 0, authority_end)
    if at >= 0:
        user, colon, _password = rest[:at].partition(":")
        if colon:
            rest = f"{user}@{rest[at + 1 :]}" if user else rest[at + 1 :]
    query_at = rest.find("?")
    if query_at < 0:
        return f"{scheme}://{rest}"
    query, hash_sign, fragment = rest[query_at + 1 :].partition("#")
    kept = [p for p in query.split("&") if not _is_secret_parameter(p)]
    tail = f"?{'&'.join(kept)}" if kept else ""
    return f"{scheme}://{rest[:query_at]}{tail}{hash_sign}{fragment}"


def _is_secret_parameter(parameter: str) -> bool:
    name = urllib.parse.unquote_plus(parameter.partition("=")[0]).strip().lower()
    return name in SECRET_PARAMETERS


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")


def without_passwords(text: str) -> str:
    """Return *text* with :func:`without_password` applied to every URL in it, any scheme.

    For messages that echo what was given, such as a URL of a scheme the journal
    does not take.

    >>> without_passwords("--journal mysql://root:pw@db/x: a file or a postgresql:// URL")
    '--journal mysql://root@db/x: a file or a postgresql:// URL'
    """
    return _URL.sub(lambda match: without_password(match.group()), text)

"""Running spend totals of the SQLite journal, kept by triggers on its creates.

A spend check (:func:`._journal_spend.check_spend`) needs what the whole journal, or
one batch, has reserved per model and size. Summing every create at each check made a
long-lived journal's creates slower as it grew (each one read every record, inside
the write transaction). The table ``zimage_spend`` holds those sums instead, one row
per *scope* (``''``: the whole journal; ``'#'`` and a batch id: that batch), model and
size; triggers on ``zimage_creates`` keep it, so the writes of every version of the
package count (plain inserts, ``INSERT OR REPLACE``, updates, deletes; an ``INSERT OR
IGNORE`` or an upsert of an existing key would not, and none is made), and a journal
written before the table existed is summed once when opened (:func:`set_up_totals`).

A create counts unless ``rejected``: its known cost (``credits_reserved``, else
``expected_cost``), whether it has none (unpriced), one create, and whether a task may
or may not exist (``submitting``, ``uncertain``). The PostgreSQL journal keeps the same
table with its own trigger (:mod:`._journal_postgres_sql`).
"""

from __future__ import annotations

import sqlite3

__all__ = ["SPEND", "scope_of", "set_up_totals"]

_TABLE = """CREATE TABLE IF NOT EXISTS zimage_spend (
    scope TEXT NOT NULL,
    model TEXT NOT NULL,
    size TEXT NOT NULL,
    known REAL NOT NULL DEFAULT 0,
    unpriced INTEGER NOT NULL DEFAULT 0,
    creates INTEGER NOT NULL DEFAULT 0,
    uncertain INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, model, size)
)"""

#: What one create *R* adds to its totals: known cost, unpriced, creates, uncertain.
_PARTS = (
    "COALESCE({R}.credits_reserved, {R}.expected_cost, 0)",
    "({R}.credits_reserved IS NULL AND {R}.expected_cost IS NULL)",
    "1",
    "{R}.state IN ('submitting', 'uncertain')",
)
_COLUMNS = ("known", "unpriced", "creates", "uncertain")
_ROWS = (
    "zimage_spend.model = {R}.model AND zimage_spend.size = {R}.size"
    " AND zimage_spend.scope IN ('', '#' || {R}.batch_id)"
)


def _kept(column: str, value: str) -> str:
    """Return ``column = value``; credits kept to a billionth, so that no float rounding piles up.

    A total that is added to and taken from at every write would otherwise keep the
    rounding error of each step for good; costs are decimal numbers (from JSON) of a
    few places, whose sums a billionth of a credit holds exactly.
    """
    return f"{column} = ROUND({value}, 9)" if column == "known" else f"{column} = {value}"


def _add(row: str, sign: str) -> str:
    """Return the statements adding (*sign* ``+``) or taking away (``-``) *row* from its totals.

    No ``INSERT OR IGNORE``: in a trigger, the outer statement's conflict clause (the
    ``INSERT OR REPLACE`` of a begin) would replace it, and a total would start over.
    """
    sets = ", ".join(_kept(c, f"{c} {sign} ({p})") for c, p in zip(_COLUMNS, _PARTS, strict=True))
    update = f"UPDATE zimage_spend SET {sets} WHERE {_ROWS} AND {{R}}.state != 'rejected';"  # noqa: S608 (constants)
    if sign == "-":
        return update.format(R=row)
    missing = (
        "INSERT INTO zimage_spend (scope, model, size) SELECT {scope}, {R}.model, {R}.size"
        " WHERE {R}.state != 'rejected' AND {scope} IS NOT NULL AND NOT EXISTS (SELECT 1"
        " FROM zimage_spend WHERE scope = {scope} AND model = {R}.model AND size = {R}.size);"
    )
    return "\n".join(
        (
            missing.format(scope="''", R=row),
            missing.format(scope=f"'#' || {row}.batch_id", R=row),
            update.format(R=row),
        )
    )


#: A begin over an existing key (``INSERT OR REPLACE``) deletes the old row without
#: firing delete triggers (SQLite's default ``recursive_triggers = OFF``): the row is
#: taken away before the insert, by key; a plain insert over it fails and undoes this.
_REPLACED = (
    "UPDATE zimage_spend SET "  # noqa: S608 (constants)
    + ", ".join(
        _kept(c, f"{c} - (SELECT {p.format(R='c')} FROM zimage_creates c WHERE c.key = NEW.key)")  # noqa: S608
        for c, p in zip(_COLUMNS, _PARTS, strict=True)
    )
    + " WHERE EXISTS (SELECT 1 FROM zimage_creates c WHERE c.key = NEW.key"  # noqa: S608
    f" AND c.state != 'rejected' AND {_ROWS.format(R='c')});"
)

_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS zimage_spend_replaced BEFORE INSERT ON zimage_creates"
    f" BEGIN {_REPLACED} END",
    "CREATE TRIGGER IF NOT EXISTS zimage_spend_inserted AFTER INSERT ON zimage_creates"
    f" BEGIN {_add('NEW', '+')} END",
    "CREATE TRIGGER IF NOT EXISTS zimage_spend_updated AFTER UPDATE OF"
    " state, credits_reserved, expected_cost, model, size, batch_id ON zimage_creates"
    f" BEGIN {_add('OLD', '-')} {_add('NEW', '+')} END",
    "CREATE TRIGGER IF NOT EXISTS zimage_spend_deleted AFTER DELETE ON zimage_creates"
    f" BEGIN {_add('OLD', '-')} END",
)

_FILL = (
    "INSERT INTO zimage_spend SELECT {scope}, model, size, ROUND(SUM({known}), 9), SUM({unpriced}),"
    " COUNT(*), SUM({uncertain}) FROM zimage_creates WHERE state != 'rejected' {where}"
    " GROUP BY {scope}, model, size"
)
_FILLS = tuple(
    _FILL.format(
        scope=scope,
        where=where,
        known=_PARTS[0].format(R="zimage_creates"),
        unpriced=_PARTS[1].format(R="zimage_creates"),
        uncertain=_PARTS[3].format(R="zimage_creates"),
    )
    for scope, where in (("''", ""), ("'#' || batch_id", "AND batch_id IS NOT NULL"))
)

#: The totals of scope ``?`` (2nd), less what the create with key ``?`` (1st) adds to
#: them: a create begun again is not counted against itself. Rows as
#: :func:`._journal_spend.summarize_spend` reads them.
SPEND = (
    "SELECT s.model, s.size, s.known - COALESCE(x.known, 0), s.unpriced - COALESCE(x.unpriced, 0),"  # noqa: S608
    " s.creates - COALESCE(x.creates, 0), s.uncertain - COALESCE(x.uncertain, 0)"
    " FROM zimage_spend s LEFT JOIN (SELECT model, size, batch_id, "
    + ", ".join(f"{p.format(R='c')} AS {c}" for c, p in zip(_COLUMNS, _PARTS, strict=True))
    + " FROM zimage_creates c WHERE c.key = ? AND c.state != 'rejected') x"
    " ON x.model = s.model AND x.size = s.size AND s.scope IN ('', '#' || x.batch_id)"
    " WHERE s.scope = ?"
)


def scope_of(batch_id: str | None) -> str:
    """Return the totals' scope of *batch_id* (None: the whole journal).

    >>> scope_of(None), scope_of("b1")
    ('', '#b1')
    """
    return "" if batch_id is None else f"#{batch_id}"


def set_up_totals(db: sqlite3.Connection) -> None:
    """Create the totals and their triggers; sum the journal if it had none (in a transaction)."""
    had = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'zimage_spend'"
    ).fetchone()
    db.execute(_TABLE)
    for trigger in _TRIGGERS:
        db.execute(trigger)
    if had is None:
        for fill in _FILLS:
            db.execute(fill)

"""``zimage batch``: every prompt of a file, concurrently, resumable through the journal.

Any number of ``zimage batch`` processes given the same file, ``--journal`` (a
PostgreSQL URL across machines) and batch id share the batch as its workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ._batch import Batch
from ._batchfile import BatchFileError, read_batch_file
from ._batchoptions import check_batch_id, check_lease, check_output_names, check_worker_id
from ._cli_common import (
    CLI_EXTRA,
    SPEND_LIMIT_EXIT,
    ServiceError,
    UsageError,
    check_writable,
    echo,
    journal_exists,
    journal_label,
    open_session,
    printable_command,
    say,
    shown,
)
from ._cli_report import Reporter, ThisRun, output_mode
from ._cli_threads import off_the_loop
from ._cli_words import spend_limit_text
from ._exceptions import (
    InvalidRequestError,
    JournalError,
    SpendLimitError,
)
from ._journal import IN_MEMORY_WORDS, is_in_memory_name, is_postgres_url, open_journal
from ._journal_postgres_sql import without_password
from ._journaling import check_max_credits
from ._models import GenerationRequest
from ._naming import check_template
from ._runtime import DEFAULT
from ._session_batch import MAX_CONCURRENCY

__all__ = ["JOURNAL_NAME", "MANIFEST_NAME", "run_batch"]

#: The journal's file name inside the output directory, unless --journal says otherwise.
JOURNAL_NAME = "zimage-journal.sqlite"
#: The batch manifest's file name of earlier versions, taken over as the journal.
MANIFEST_NAME = "zimage-manifest.sqlite"
_UNCERTAIN = (
    "{} item(s) may have made a task whose id is unknown, which the same command leaves "
    "as it is; this sends their creates again with their keys (where keys are honoured, "
    "that returns the task already made, not a new one):\n  {}"
)
_AGAIN = (
    "run the same command again to resume the unfinished items (saved ones are kept, "
    "nothing is paid twice)"
)


async def _check_contact_sheet(
    path: Path | None, args: argparse.Namespace, journal: str | Path
) -> None:
    """Refuse a sheet that cannot be written or would replace a file the batch needs."""
    if path is None:
        return
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise UsageError(f"--contact-sheet {shown(path)}: the name must end in .png, .jpg or .webp")
    from ._contact_sheet import sheet_clash

    keep = [("the prompt file", args.file)]
    if isinstance(journal, Path):
        keep.append(("the journal", journal))
    clash = sheet_clash(path, keep=keep, folder=args.output_dir, template=args.name)
    if clash is None and journal_exists(str(journal)):  # not the sheet: safe to open
        saved = [("an image the journal records as saved", p) for p in await _saved(journal)]
        clash = sheet_clash(path, keep=saved, folder=args.output_dir, template=args.name)
    if clash is not None:
        raise UsageError(f"--contact-sheet {shown(path)}: {shown(clash)}; name another file")
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise UsageError(f"--contact-sheet needs Pillow: {CLI_EXTRA}") from None
    check_writable(path.parent, option=f"--contact-sheet {shown(path)}: ")


async def _saved(journal: str | Path) -> list[Path]:
    """Return the paths of the images the journal records as saved (none if unreadable)."""
    try:
        store = await open_journal(journal)
    except JournalError:  # the batch says so when it opens it
        return []
    async with store:
        return [path for record in await store.records() for path in record.paths]


def _journal_target(args: argparse.Namespace, out_dir: Path) -> tuple[str | Path, str]:
    """Return the batch's journal and its batch id, from the options and the defaults.

    By default the journal is ``DIR/zimage-journal.sqlite``; an output directory that
    holds the manifest of an earlier version (``DIR/zimage-manifest.sqlite``) and no
    journal keeps using that file, which the journal takes over, with the batch id the
    manifest had (the batch file's resolved path). The default batch id is the batch
    file's name, the same on every machine.
    """
    if args.journal is not None and args.manifest is not None:
        raise UsageError("--manifest is the earlier name of --journal: give one of them")
    given = args.journal if args.journal is not None else args.manifest
    legacy = out_dir / MANIFEST_NAME
    if given is None and not (out_dir / JOURNAL_NAME).exists() and legacy.exists():
        say(f"using the batch manifest of an earlier version, {shown(legacy)}, as the journal")
        batch_id = args.batch_id or str(args.file.resolve())
        return legacy, batch_id
    batch_id = args.batch_id or args.file.name
    if given is None:
        return out_dir / JOURNAL_NAME, batch_id
    if is_postgres_url(given):
        return str(given), batch_id
    option = "--journal" if args.journal is not None else "--manifest"
    if "://" in str(given):
        raise UsageError(
            f"{option} {shown(journal_label(str(given)))}: give a file path or a postgresql:// URL"
        )
    if is_in_memory_name(str(given)):
        raise UsageError(f"{option} {shown(given)} {IN_MEMORY_WORDS}; give a path to a file")
    return Path(given), batch_id


def _check_options(args: argparse.Namespace) -> None:
    """Refuse bad option values before anything starts (exit status 2)."""
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        raise UsageError(
            f"--concurrency must be from 1 to {MAX_CONCURRENCY}, not {args.concurrency}"
        )
    try:
        if args.size is not None:  # the items' default: its own error, not line 1's
            GenerationRequest(prompt="-", size=args.size)
        check_template(args.name)
        check_lease(args.lease)
        check_worker_id(args.worker_id)
        if args.batch_id is not None:
            check_batch_id(args.batch_id)
        check_max_credits(args.max_credits, journal="journal", name="max_credits")
    except InvalidRequestError as exc:
        option = "--" + exc.field.replace("_", "-")
        raise UsageError(f"{option}: {shown(exc.rule)}; {shown(exc.problem)}") from None


async def run_batch(
    args: argparse.Namespace, interrupted: Callable[[], bool], argv: Sequence[str]
) -> int:
    defaults: dict[str, object] = {}
    if args.size is not None:
        defaults["size"] = args.size
    if args.nsfw_check is not None:
        defaults["nsfw_check"] = args.nsfw_check
    _check_options(args)
    try:
        lines = await off_the_loop(lambda: read_batch_file(args.file, defaults=defaults))
        check_output_names(args.name, [e.request for e in lines], [e.line for e in lines])
    except BatchFileError as exc:
        raise UsageError(shown(exc)) from None
    except InvalidRequestError as exc:
        raise UsageError(f"--name: {shown(exc.rule)}; {shown(exc.problem)}") from None
    out_dir: Path = args.output_dir
    check_writable(out_dir)
    journal, batch_id = _journal_target(args, out_dir)
    await _check_contact_sheet(args.contact_sheet, args, journal)
    requests = [entry.request for entry in lines]
    reporter = Reporter(lines, mode=output_mode(args, sys.stdout), out=sys.stdout)
    started = time.monotonic()
    paths: dict[int, tuple[Path, ...]] = {}
    here = ThisRun()
    async with open_session(args, session_journal=False) as target:
        zs, emulated = target.session, target.emulated
        batch = zs._generate_many(
            requests,
            concurrency=args.concurrency,
            output_dir=out_dir,
            journal=journal,
            manifest=None,
            batch_id=batch_id,
            worker_id=args.worker_id,
            lease=args.lease,
            timeout=DEFAULT,
            resubmit_uncertain=args.resubmit_uncertain,
            resubmit_failed=args.resubmit_failed,
            resubmit_expired=args.resubmit_expired,
            max_credits=args.max_credits,
            cost=args.cost,
            name=args.name,
            numbers=[entry.line for entry in lines],
            forget_elsewhere=emulated,
        )
        where = _where(journal)
        try:
            async with batch:
                reporter.start(batch)
                async for item in batch:
                    reporter.item(item)
                    here.add(item, batch)
                    if item.ok:
                        paths[item.index] = item.paths
        except JournalError as exc:
            if batch.stats.submitted == 0:
                raise UsageError(shown(exc)) from None
            raise ServiceError(shown(exc)) from None
        except BrokenPipeError:
            raise
        except OSError as exc:  # a full disk, a folder where an image goes: the batch stops
            raise ServiceError(
                f"a file could not be written: {shown(exc)}\nfix that, then {_AGAIN}:\n"
                f"  {printable_command(argv)}"
            ) from None
        except asyncio.CancelledError:
            if not interrupted():
                raise
            reporter.stop()
            if reporter.mode == "json":
                summary = _summary(reporter, batch, len(lines), out_dir, where, None, started)
                print(json.dumps(summary | {"interrupted": True}), flush=True)
            say(_interrupted_message(reporter, where, argv, emulated=emulated))
            return 130
        finally:
            reporter.stop()
    sheet = None
    if args.contact_sheet is not None:
        images, stop = [p for i in sorted(paths) for p in paths[i]], threading.Event()
        sheet = await off_the_loop(
            lambda: _contact_sheet(images, args.contact_sheet, stop), stop=stop
        )
    summary = _summary(reporter, batch, len(lines), out_dir, where, sheet, started)
    if reporter.mode == "json":
        print(json.dumps(summary | {"interrupted": False}), flush=True)
    else:
        echo(_summary_text(reporter, batch, summary, out_dir, sheet))
    problem = here.configuration_problem(target.session.base_url)
    if problem is not None:
        return _misconfigured(problem, argv)
    stopped_by = batch.stopped_by
    if stopped_by is not None:
        why = (
            spend_limit_text(stopped_by)
            if isinstance(stopped_by, SpendLimitError)
            else shown(stopped_by)
        )
        say(f"the batch stopped sending creates: {why}")
    if reporter.failed:
        say(f"{_AGAIN}:\n  {printable_command(argv)}")
        if here.uncertain and not args.resubmit_uncertain:
            say(
                _UNCERTAIN.format(
                    here.uncertain, printable_command([*argv, "--resubmit-uncertain"])
                )
            )
    if isinstance(batch.stopped_by, SpendLimitError):
        return SPEND_LIMIT_EXIT
    return 0 if reporter.failed == 0 else 1


def _misconfigured(problem: Exception, argv: Sequence[str]) -> int:
    """Say what to fix (as `zimage generate` would) and how to resume; return the status."""
    if isinstance(problem, (UsageError, ServiceError)):
        say(f"error: {problem}")
    else:
        say(f"error: {type(problem).__name__}: {shown(problem)}")
    say(
        "fix that, then run the same command again to resume the batch (nothing is "
        f"paid twice):\n  {printable_command(argv)}"
    )
    return 2 if isinstance(problem, UsageError) else 1


def _where(journal: str | Path) -> str:
    return without_password(journal) if isinstance(journal, str) else str(journal)


def _summary_text(
    reporter: Reporter,
    batch: Batch,
    summary: dict[str, object],
    out_dir: Path,
    sheet: Path | None,
) -> str:
    total = len(reporter.lines)
    handled = reporter.saved + reporter.failed
    scope = f"{total} item(s)" if handled == total else f"{total} item(s), {handled} here"
    text = (
        f"{scope}: {reporter.saved} saved, {reporter.failed} failed"
        f" ({reporter.resumed} from an earlier run) in {summary['elapsed_seconds']:.1f} s;"
        f" images in {out_dir}"
    )
    if sheet is not None:
        text += f"; contact sheet {sheet}"
    stats = batch.stats
    return (
        f"{text}\nworker {stats.worker_id}: claimed {stats.claimed} ({stats.taken_over} "
        f"taken over), submitted {stats.submitted}, resumed {stats.resumed}, saved "
        f"{stats.saved}, failed {stats.failed}, not sent {stats.not_sent}, reported "
        f"{stats.reported} in {stats.elapsed:.1f} s; journal {summary['journal']}"
    )


def _summary(
    reporter: Reporter,
    batch: Batch,
    total: int,
    out_dir: Path,
    journal: str,
    sheet: Path | None,
    started: float,
) -> dict[str, object]:
    return {
        "event": "summary",
        "total": total,
        "saved": reporter.saved,
        "failed": reporter.failed,
        "resumed": reporter.resumed,
        "output_dir": str(out_dir),
        "journal": journal,
        "batch_id": batch.batch_id,
        "worker": batch.stats.to_json(),
        "contact_sheet": None if sheet is None else str(sheet),
        "elapsed_seconds": round(time.monotonic() - started, 3),
    }


def _contact_sheet(images: list[Path], dest: Path, stop: threading.Event) -> Path | None:
    from ._contact_sheet import make_contact_sheet

    if not images:
        say("no image was saved, so no contact sheet was written")
        return None
    if dest.resolve() in {image.resolve() for image in images}:
        say(f"no contact sheet was written: {shown(dest)} is one of the saved images")
        return None

    def left_out(path: Path, why: str) -> None:
        say(f"the contact sheet leaves out {shown(path)}: {shown(why)}")

    try:  # the images are saved and paid for: the sheet is never worth the summary
        return make_contact_sheet(images, dest, on_skip=left_out, stop=stop)
    except (OSError, ValueError) as exc:
        say(f"no contact sheet was written: {shown(exc)}")
        return None


def _interrupted_message(
    reporter: Reporter, journal: str, argv: Sequence[str], *, emulated: bool
) -> str:
    text = (
        f"interrupted: {reporter.saved} image(s) saved, {reporter.failed} failed. Every "
        f"task created so far is recorded in the journal {journal}; "
    )
    if emulated:
        text += (
            "the in-process emulator's tasks ended with it, so the same command "
            "generates the unfinished items again and keeps the saved ones:"
        )
    else:
        text += (
            "they keep running at the service (and are billed). Run the same command "
            "again to resume them without paying twice (a create cut off while it was "
            "being sent is reported uncertain then: add --resubmit-uncertain to send it "
            "again under its own key):"
        )
    return f"{text}\n  {printable_command(argv)}"

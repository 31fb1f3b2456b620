"""``zimage batch``: every prompt of a file, concurrently, resumable through the journal.

Any number of ``zimage batch`` processes given the same file, ``--journal`` (a
PostgreSQL URL across machines) and batch id share the batch as its workers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import string
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ._batchfile import BatchFileError, BatchLine, read_batch_file
from ._batchoptions import check_batch_id, check_lease, check_output_names, check_worker_id
from ._cli_common import (
    IMAGE_SUFFIXES,
    SPEND_LIMIT_EXIT,
    ServiceError,
    UsageError,
    check_batch_folder,
    echo,
    journal_exists,
    journal_label,
    open_session,
    printable_command,
    say,
    shown,
)
from ._cli_report import (
    Reporter,
    ThisRun,
    check_contact_sheet,
    contact_sheet,
    interrupted_message,
    output_mode,
    summary,
    summary_text,
)
from ._cli_stopped import report_left
from ._cli_threads import off_the_loop
from ._cli_words import batch_words, line_words, spend_limit_text, stop_words
from ._exceptions import (
    InvalidRequestError,
    JournalError,
    SpendLimitError,
)
from ._journal import IN_MEMORY_WORDS, is_in_memory_name, is_postgres_url, open_journal
from ._journal_postgres_sql import without_password
from ._journal_records import JournalRecord
from ._journaling import check_max_credits
from ._models import GenerationRequest
from ._naming import IMAGES_CHECKED, _render, check_template, slugify
from ._quoting import quote, shell_line
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


async def _records(journal: str | Path) -> list[JournalRecord]:
    """Return the records of the journal, if it exists (none if it cannot be opened)."""
    if not journal_exists(str(journal)):
        return []
    try:
        store = await open_journal(journal)
    except JournalError:  # the batch says so when it opens it
        return []
    async with store:
        return await store.records()


def _others_images(
    args: argparse.Namespace,
    batch_id: str,
    lines: Sequence[BatchLine],
    records: Sequence[JournalRecord],
) -> tuple[str, Path] | None:
    """Return another batch's image in -o DIR under a name this batch gives, and its batch.

    A batch never replaces a file it did not save: it would find the image only when
    saving its own there, after its tasks were created and billed. Names with
    ``{task_id}`` never meet another batch's (the tasks are new).
    """
    target = os.path.realpath(args.output_dir)
    folders: dict[str, bool] = {}  # a folder of a record: whether it is -o DIR

    def in_dir(path: Path) -> bool:
        folder = os.path.dirname(path)
        if folder not in folders:
            folders[folder] = os.path.realpath(folder) == target
        return folders[folder]

    theirs = {
        path.stem: (record.batch_id, path)
        for record in records
        if record.batch_id is not None and record.batch_id != batch_id
        for path in record.paths
        if path.suffix.lower() in IMAGE_SUFFIXES and in_dir(path) and os.path.lexists(path)
    }
    fields = [field for _, field, _, _ in string.Formatter().parse(args.name)]
    if not theirs or "task_id" in fields:
        return None
    several = args.name if "index" in fields else args.name + "-{index}"
    for entry in lines:
        request, slug = entry.request, slugify(entry.request.prompt)
        for form, count in ((args.name, 1), (several, IMAGES_CHECKED)):
            for index in range(count):
                with contextlib.suppress(ValueError, TypeError, OverflowError):  # no name
                    name = _render(form, "", index, request.seed, slug, entry.line)
                    if (found := theirs.get(name)) is not None:
                        return found
    return None


def _others_refusal(batch_id: str, image: Path, out_dir: Path) -> FileExistsError:
    """Say that -o DIR holds batch *batch_id*'s *image*, under a name this batch gives."""
    resume = shell_line(["--batch-id", batch_id])
    example = shown(out_dir / image.name)
    return FileExistsError(
        f"-o {shown(out_dir)}: it holds images that batch {shown(quote(batch_id))} saved "
        f"under names this batch gives its items, such as {example}; a batch never "
        "replaces a file it did not save, so it would stop there, after its tasks were "
        f"created and billed. Nothing was sent: give another -o DIR, or {resume} if "
        "this is that batch (its saved items are then kept, not paid again), or a --name "
        "template that gives other names"
    )


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
        batch_id = args.batch_id or _default_batch_id(str(args.file.resolve()), "path")
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
    if args.batch_id is None and args.file.name:  # none: a folder, which reading refuses
        _default_batch_id(args.file.name, "file name")


def _default_batch_id(name: str, what: str) -> str:
    """Return *name*, the batch's default id (the file's); refuse one no id can be."""
    try:
        return check_batch_id(name)
    except InvalidRequestError as exc:
        raise UsageError(
            f"the {what} {shown(name)} cannot be the batch's id, its default: "
            f"{shown(exc.problem)}; a batch id is {shown(exc.rule)}; give one with "
            "--batch-id NAME"
        ) from None


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
    except InvalidRequestError as exc:  # the items' numbers are their lines
        raise UsageError(f"--name: {shown(exc.rule)}; {shown(line_words(exc.problem))}") from None
    out_dir: Path = args.output_dir
    journal, batch_id = _journal_target(args, out_dir)
    reporter = Reporter(lines, mode=output_mode(args, sys.stdout), out=sys.stdout, out_dir=out_dir)
    started = time.monotonic()
    where = _where(journal)
    ending = functools.partial(
        summary, reporter, out_dir=out_dir, journal=where, batch_id=batch_id, started=started
    )
    try:
        check_batch_folder(out_dir)
    except UsageError as exc:
        if reporter.mode == "json":  # the record a script reads, as for the refusals below
            _print(ending(None, error=exc))
        raise
    records = await _records(journal)
    await check_contact_sheet(args.contact_sheet, args, journal, _saved(records))
    requests = [entry.request for entry in lines]
    others = _others_images(args, batch_id, lines, records)
    if others is not None:
        refusal = _others_refusal(*others, out_dir)
        if reporter.mode == "json":
            _print(ending(None, error=refusal))
        raise UsageError(str(refusal))
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
                raise UsageError(shown(batch_words(str(exc)))) from None
            raise ServiceError(shown(batch_words(str(exc)))) from None
        except BrokenPipeError:
            raise
        except OSError as exc:  # a full disk, a folder where an image goes: the batch stops
            if reporter.mode == "json":
                _print(ending(batch, error=exc))
            raise ServiceError(
                f"a file could not be written: {shown(batch_words(str(exc)))}\nfix that, "
                f"then {_AGAIN}:\n  {printable_command(argv)}"
            ) from None
        except asyncio.CancelledError:
            if not interrupted():
                raise
            reporter.stop()
            await report_left(reporter, journal, batch_id, argv, emulated=emulated, where=where)
            if reporter.mode == "json":
                _print(ending(batch, interrupted=True))
            say(interrupted_message(reporter, where, argv, emulated=emulated))
            return 130
        finally:
            reporter.stop()
    sheet = None
    if args.contact_sheet is not None:
        images, stop = [p for i in sorted(paths) for p in paths[i]], threading.Event()
        sheet = await off_the_loop(
            lambda: contact_sheet(images, args.contact_sheet, stop), stop=stop
        )
    record = ending(batch, sheet=sheet)
    if reporter.mode == "json":
        _print(record)
    else:
        echo(summary_text(reporter, batch, record, out_dir, sheet))
    problem = here.configuration_problem(target.session.base_url)
    if problem is not None:
        return _misconfigured(problem, argv)
    stopped_by = batch.stopped_by
    if stopped_by is not None:
        why = (
            spend_limit_text(stopped_by)
            if isinstance(stopped_by, SpendLimitError)
            else shown(stop_words(stopped_by))
        )
        say(f"the batch stopped sending creates: {why}")
    if reporter.failed or reporter.not_sent:
        say(f"{_again(reporter)}:\n  {printable_command(argv)}")
        if here.uncertain and not args.resubmit_uncertain:
            say(
                _UNCERTAIN.format(
                    here.uncertain, printable_command([*argv, "--resubmit-uncertain"])
                )
            )
    if isinstance(batch.stopped_by, SpendLimitError):
        return SPEND_LIMIT_EXIT
    return 0 if reporter.failed == reporter.not_sent == 0 else 1


def _again(reporter: Reporter) -> str:
    """Say that the same command resumes the failed items and sends those not sent."""
    if not reporter.not_sent:
        return _AGAIN
    unsent = f"{reporter.not_sent} item(s) not sent, once what stopped the batch is fixed"
    if not reporter.failed:
        return f"run the same command again to send the {unsent} (nothing is paid twice)"
    return f"run the same command again to resume the unfinished items and send the {unsent}"


def _misconfigured(problem: Exception, argv: Sequence[str]) -> int:
    """Say what to fix (as `zimage generate` would) and how to resume; return the status."""
    if isinstance(problem, (UsageError, ServiceError)):
        say(f"error: {problem}")
    else:
        say(f"error: {type(problem).__name__}: {shown(stop_words(problem))}")
    say(
        "fix that, then run the same command again to resume the batch (nothing is "
        f"paid twice):\n  {printable_command(argv)}"
    )
    return 2 if isinstance(problem, UsageError) else 1


def _saved(records: Sequence[JournalRecord]) -> list[Path]:
    """Return the paths of the images *records* hold as saved, every batch's."""
    return [path for record in records for path in record.paths]


def _print(record: dict[str, object]) -> None:
    print(json.dumps(record), flush=True)


def _where(journal: str | Path) -> str:
    return without_password(journal) if isinstance(journal, str) else str(journal)

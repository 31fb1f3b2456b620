"""``zimage batch``: every prompt of a file, concurrently, resumable through a manifest."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ._batchfile import BatchFileError, read_batch_file
from ._cli_common import CLI_EXTRA, PROG, UsageError, open_session, say
from ._cli_report import Reporter, output_mode
from ._exceptions import ManifestError
from ._manifest import Manifest
from ._models import GenerationRequest

__all__ = ["MANIFEST_NAME", "run_batch"]

#: The manifest's file name inside the output directory, unless --manifest says otherwise.
MANIFEST_NAME = "zimage-manifest.sqlite"


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise UsageError(
            f"cannot write to the output directory {directory}: {exc.strerror or exc}"
        ) from None


def _check_contact_sheet(path: Path | None) -> None:
    if path is None:
        return
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise UsageError(f"--contact-sheet {path}: the name must end in .png, .jpg or .webp")
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise UsageError(f"--contact-sheet needs Pillow: {CLI_EXTRA}") from None
    _check_writable(path.parent)


async def run_batch(
    args: argparse.Namespace, interrupted: Callable[[], bool], argv: Sequence[str]
) -> int:
    defaults: dict[str, object] = {}
    if args.size is not None:
        defaults["size"] = args.size
    if args.nsfw_check is not None:
        defaults["nsfw_check"] = args.nsfw_check
    if args.concurrency < 1:
        raise UsageError(f"--concurrency must be 1 or more, not {args.concurrency}")
    try:
        lines = read_batch_file(args.file, defaults=defaults)
    except BatchFileError as exc:
        raise UsageError(str(exc)) from None
    out_dir: Path = args.output_dir
    _check_writable(out_dir)
    _check_contact_sheet(args.contact_sheet)
    manifest = args.manifest if args.manifest is not None else out_dir / MANIFEST_NAME
    batch_id = str(args.file.resolve())
    requests = [entry.request for entry in lines]
    reporter = Reporter(lines, mode=output_mode(args, sys.stdout), out=sys.stdout)
    started = time.monotonic()
    paths: dict[int, tuple[Path, ...]] = {}
    if manifest.exists():  # a manifest of another batch is refused before anything starts
        _precheck(manifest, batch_id, requests)
    async with open_session(args) as target:
        zs, emulated = target.session, target.emulated
        if emulated and manifest.exists():
            _forget_emulated(manifest, batch_id, zs.base_url)
        batch = zs.generate_many(
            requests,
            concurrency=args.concurrency,
            output_dir=out_dir,
            manifest=manifest,
            batch_id=batch_id,
            resubmit_uncertain=args.resubmit_uncertain,
            resubmit_failed=args.resubmit_failed,
            resubmit_expired=args.resubmit_expired,
            name=args.name,
            numbers=[entry.line for entry in lines],
        )
        try:
            async with batch:
                reporter.start(batch)
                async for item in batch:
                    reporter.item(item)
                    if item.ok:
                        paths[item.index] = item.paths
        except ManifestError as exc:
            raise UsageError(str(exc)) from None
        except asyncio.CancelledError:
            if not interrupted():
                raise
            reporter.stop()
            if reporter.mode == "json":
                summary = _summary(reporter, len(lines), out_dir, manifest, None, started)
                print(json.dumps(summary | {"interrupted": True}), flush=True)
            say(_interrupted_message(reporter, manifest, argv, emulated=emulated))
            return 130
        finally:
            reporter.stop()
    sheet = None
    if args.contact_sheet is not None:
        sheet = _contact_sheet([p for i in sorted(paths) for p in paths[i]], args.contact_sheet)
    summary = _summary(reporter, len(lines), out_dir, manifest, sheet, started)
    if reporter.mode == "json":
        print(json.dumps(summary | {"interrupted": False}), flush=True)
    else:
        text = (
            f"{len(lines)} item(s): {reporter.saved} saved, {reporter.failed} failed"
            f" ({reporter.resumed} from an earlier run) in {summary['elapsed_seconds']} s;"
            f" images in {out_dir}"
        )
        if sheet is not None:
            text += f"; contact sheet {sheet}"
        print(text, flush=True)
    return 0 if reporter.failed == 0 else 1


def _summary(
    reporter: Reporter,
    total: int,
    out_dir: Path,
    manifest: Path,
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
        "manifest": str(manifest),
        "contact_sheet": None if sheet is None else str(sheet),
        "elapsed_seconds": round(time.monotonic() - started, 3),
    }


def _precheck(manifest: Path, batch_id: str, requests: list[GenerationRequest]) -> None:
    try:
        opened = Manifest.open(manifest, batch_id=batch_id)
        try:
            opened.check(requests, base_url=None)
        finally:
            opened.close()
    except ManifestError as exc:
        raise UsageError(str(exc)) from None


def _forget_emulated(manifest: Path, batch_id: str, base_url: str) -> None:
    """Drop tasks of an earlier in-process emulator: they ended with its process."""
    try:
        opened = Manifest.open(manifest, batch_id=batch_id)
    except ManifestError as exc:
        raise UsageError(str(exc)) from None
    try:
        dropped = opened.forget_unfinished(base_url=base_url)
    finally:
        opened.close()
    if dropped:
        say(
            f"{dropped} unfinished item(s) of an earlier emulator run will be generated "
            "again (an in-process emulator's tasks end with its process)"
        )


def _contact_sheet(images: list[Path], dest: Path) -> Path | None:
    from ._contact_sheet import make_contact_sheet

    if not images:
        say("no image was saved, so no contact sheet was written")
        return None
    return make_contact_sheet(images, dest)


def _interrupted_message(
    reporter: Reporter, manifest: Path, argv: Sequence[str], *, emulated: bool
) -> str:
    text = (
        f"interrupted: {reporter.saved} image(s) saved, {reporter.failed} failed. Every "
        f"task created so far is recorded in {manifest}; "
    )
    if emulated:
        text += (
            "the in-process emulator's tasks ended with it, so the same command "
            "generates the unfinished items again and keeps the saved ones:"
        )
    else:
        text += (
            "they keep running at the service (and are billed). Run the same command "
            "again to resume them without paying twice:"
        )
    return f"{text}\n  {shlex.join([PROG, *argv])}"

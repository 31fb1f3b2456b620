"""``zimage info FILE``: the generation metadata an image file carries."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

from ._cli_common import MAX_INFO_BYTES, echo, say, shown
from ._imageinfo import image_dimensions, sniff_content_type
from ._metadata import read_metadata

__all__ = ["MAX_INFO_BYTES", "run_info"]


def _read(path: Path) -> bytes:
    """Return the bytes of *path*, a regular file of at most MAX_INFO_BYTES; else OSError.

    Anything else (a device such as /dev/zero, a named pipe) is refused before it is
    opened: it could be endless, or block.
    """
    if not stat.S_ISREG(path.stat().st_mode):
        raise OSError("not a regular file (zimage info reads image files only)")
    with path.open("rb") as file:
        data = file.read(MAX_INFO_BYTES + 1)
    if len(data) > MAX_INFO_BYTES:
        raise OSError(f"larger than {MAX_INFO_BYTES // 2**20} MiB, more than any image it reads")
    return data


def run_info(args: argparse.Namespace) -> int:
    """Print the file's format, size and metadata fields; exit 2 if it is no image."""
    try:
        data = _read(args.image)
    except OSError as exc:
        say(f"error: cannot read {shown(args.image)}: {exc.strerror or shown(exc)}")
        return 2
    content_type = sniff_content_type(data[:32])
    try:
        fields = read_metadata(data)
    except ValueError as exc:
        say(f"error: {shown(args.image)}: {shown(exc)}")
        return 2
    size = image_dimensions(data)
    if args.json:
        record = {
            "path": str(args.image),
            "content_type": content_type,
            "width": None if size is None else size[0],
            "height": None if size is None else size[1],
            "fields": fields,
        }
        print(json.dumps(record, ensure_ascii=False), flush=True)
        return 0
    pixels = "" if size is None else f", {size[0]} x {size[1]}"
    echo(f"{shown(args.image)}: {content_type}{pixels}")
    if not fields:
        echo("  no generation metadata")
    for name, value in fields.items():
        echo(f"  {shown(name)}: {shown(value)}")
    return 0

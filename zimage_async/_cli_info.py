"""``zimage info FILE``: the generation metadata an image file carries."""

from __future__ import annotations

import argparse
import json

from ._cli_common import echo, say, shown
from ._imageinfo import image_dimensions, sniff_content_type
from ._metadata import read_metadata

__all__ = ["run_info"]


def run_info(args: argparse.Namespace) -> int:
    """Print the file's format, size and metadata fields; exit 2 if it is no image."""
    try:
        data = args.image.read_bytes()
    except OSError as exc:
        say(f"error: cannot read {args.image}: {exc.strerror or exc}")
        return 2
    content_type = sniff_content_type(data[:32])
    try:
        fields = read_metadata(data)
    except ValueError as exc:
        say(f"error: {args.image}: {exc}")
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
    echo(f"{args.image}: {content_type}{pixels}")
    if not fields:
        echo("  no generation metadata")
    for name, value in fields.items():
        echo(f"  {shown(name)}: {shown(value)}")
    return 0

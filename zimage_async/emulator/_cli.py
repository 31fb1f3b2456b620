"""Running the emulator as a program: ``python -m zimage_async.emulator``.

:func:`serve` runs a configured :class:`Emulator` until a stop event (or Ctrl-C /
SIGTERM), announcing its URLs; :func:`main` parses the command line and runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence

from ._clock import SystemClock
from ._server import DEFAULT_API_KEY, Emulator

__all__ = ["build_parser", "main", "serve"]


def _banner(emulator: Emulator) -> str:
    return (
        f"Z-Image emulator: base URL {emulator.base_url}  api key {emulator.api_key}\n"
        f"Images served from {emulator.image_base_url}\n"
        "Try:\n"
        f"  curl -s {emulator.base_url}/v1/images/generations \\\n"
        f"    -H 'Authorization: Bearer {emulator.api_key}' \\\n"
        "    -H 'Content-Type: application/json' \\\n"
        '    -d \'{"model": "z-image-turbo", "prompt": "a cute cat", "size": "1:1"}\'\n'
        "Press Ctrl-C to stop."
    )


async def serve(
    emulator: Emulator,
    *,
    stop: asyncio.Event | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Run *emulator* until *stop* is set, or until SIGINT/SIGTERM when *stop* is None.

    *announce* receives the banner (base URL, API key, a curl example) once listening;
    by default it is printed to stdout.
    """
    stop_event = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if stop is None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop_event.set)
                installed.append(signum)
    try:
        async with emulator:
            (announce or _print)(_banner(emulator))
            await stop_event.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _print(text: str) -> None:
    print(text, flush=True)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``python -m zimage_async.emulator``."""
    parser = argparse.ArgumentParser(
        prog="python -m zimage_async.emulator",
        description="Run the offline Z-Image Turbo API emulator on 127.0.0.1.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8000, help="API port (0 picks a free one)")
    parser.add_argument("--image-port", type=int, default=0, help="image origin port (0: free)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"accepted key (repeatable; default {DEFAULT_API_KEY})",
    )
    parser.add_argument("--task-duration", type=float, default=3.0, metavar="SECONDS")
    parser.add_argument("--queue-delay", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--link-ttl", type=float, default=86_400.0, metavar="SECONDS")
    parser.add_argument(
        "--clock-speed", type=float, default=1.0, help="clock seconds per real second"
    )
    parser.add_argument("--image-format", choices=("png", "jpeg", "webp"), default="png")
    parser.add_argument("--images-per-task", type=int, default=1)
    parser.add_argument("--image-padding-bytes", type=int, default=0)
    parser.add_argument("--callback-mode", choices=("strict", "permissive"), default="strict")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible runs")
    parser.add_argument(
        "--idempotency",
        choices=("honour", "ignore"),
        default="honour",
        help="honour Idempotency-Key headers (replays, 409 on a changed body) or ignore them",
    )
    parser.add_argument(
        "--image-framing",
        choices=("length", "chunked", "close"),
        default="length",
        help="how image bodies end: Content-Length, chunked, or the connection's close",
    )
    parser.add_argument(
        "--block-script-user-agents",
        action="store_true",
        help="answer Cloudflare-style 403 (error 1010) to script-like User-Agents on images",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator from command-line arguments; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        emulator = Emulator(
            api_keys=tuple(args.api_keys or (DEFAULT_API_KEY,)),
            host=args.host,
            port=args.port,
            image_port=args.image_port,
            clock=SystemClock(speed=args.clock_speed),
            task_duration=args.task_duration,
            queue_delay=args.queue_delay,
            link_ttl=args.link_ttl,
            image_format=args.image_format,
            images_per_task=args.images_per_task,
            image_padding_bytes=args.image_padding_bytes,
            callback_mode=args.callback_mode,
            seed=args.seed,
            idempotency=args.idempotency,
            image_framing=args.image_framing,
            block_script_user_agents=args.block_script_user_agents,
        )
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(emulator))
    except OSError as exc:
        print(f"error: cannot listen: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0

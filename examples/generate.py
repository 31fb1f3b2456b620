"""Generate a handful of images concurrently and save them to a folder.

Runs against the bundled emulator unless ZIMAGE_API_KEY is set, in which case it uses
the real service (and is billed for each prompt)::

    python examples/generate.py                 # offline, on the emulator
    python examples/generate.py out/ "a red fox" "a lighthouse at dusk"
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import zimage_async
from zimage_async.emulator import Emulator

PROMPTS = [
    "a cute cat wearing a tiny hat",
    "a lighthouse at dusk, oil painting",
    "a red fox in fresh snow",
    "a bowl of ramen, studio lighting",
    "an astronaut reading in a library",
    "a paper boat on a rainy street",
]


@contextlib.asynccontextmanager
async def open_session() -> AsyncIterator[zimage_async.Session]:
    """Open a Session on the real API if a key is set, else on a local emulator."""
    if os.environ.get("ZIMAGE_API_KEY"):
        async with zimage_async.Session() as session:
            print(f"using the API at {session.base_url}", file=sys.stderr)
            yield session
        return
    async with Emulator(task_duration=1.5) as emu:
        print(f"no ZIMAGE_API_KEY set: using the emulator at {emu.base_url}", file=sys.stderr)
        async with zimage_async.Session(api_key=emu.api_key, base_url=emu.base_url) as session:
            yield session


async def generate_one(
    session: zimage_async.Session, prompt: str, out: Path
) -> tuple[str, list[Path] | BaseException]:
    """Submit one prompt, wait for it and save its images; return the paths or the error."""
    try:
        handle = await session.submit(prompt, size="4:3")
        return prompt, await handle.save(out)
    except zimage_async.ZImageError as exc:
        return prompt, exc


async def main(argv: list[str]) -> int:
    """Generate every prompt concurrently; exit 0 if all were saved, else 1."""
    out = Path(argv[0]) if argv else Path("out")
    prompts = argv[1:] or PROMPTS
    started = time.perf_counter()
    async with open_session() as session:
        outcomes = await asyncio.gather(*(generate_one(session, p, out) for p in prompts))
    failures = 0
    for prompt, outcome in outcomes:
        if isinstance(outcome, BaseException):
            failures += 1
            print(f"FAILED  {prompt!r}: {outcome}")
        else:
            print(f"saved   {', '.join(str(p) for p in outcome)}  <- {prompt!r}")
    print(
        f"{len(prompts) - failures} of {len(prompts)} saved to {out}/ in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))

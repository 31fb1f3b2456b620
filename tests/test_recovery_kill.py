"""A service killed (SIGKILL) while waiting gets every billed task back after a restart.

The "service" is a separate Python process that opens ``Session(journal=...)``, submits
three generations and waits for them; the test kills it with SIGKILL once all three are
created and polled, then opens a new session on the same journal, recovers and saves the
three tasks, and checks with the emulator's ledger that nothing was paid twice.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import time
from pathlib import Path

from zimage_async import Session
from zimage_async.emulator import Emulator, ManualClock

from .conftest import FAST_POLL, FAST_RETRY, until

PROMPTS = ("a lighthouse at dusk", "a fox in the snow", "a boat on a lake")

SERVICE = textwrap.dedent(
    """
    import asyncio, sys
    from zimage_async import Session

    async def main(base_url, api_key, journal):
        async with Session(api_key=api_key, base_url=base_url, journal=journal) as zs:
            handles = [await zs.submit(p) for p in {prompts!r}]
            await asyncio.gather(*(h.save("never") for h in handles))

    asyncio.run(main(*sys.argv[1:4]))
    """
).format(prompts=PROMPTS)


async def test_a_service_killed_mid_wait_gets_its_billed_tasks_back_without_paying_again(
    tmp_path: Path,
) -> None:
    """SIGKILL while three tasks run; a new session recovers and saves all three, billed once."""
    clock = ManualClock(start=time.time())
    journal = tmp_path / "service-journal.sqlite"
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    async with Emulator(clock=clock, task_duration=1.0, seed=4) as emu:
        service = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            emu.base_url,
            emu.api_key,
            str(journal),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await until(
                lambda: len(emu.ledger) == 3 and emu.request_counts.get("task", 0) >= 3,
                deadline=30,
            )
        finally:
            service.send_signal(signal.SIGKILL)
            _, stderr = await service.communicate()
        assert service.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
        created = sorted(entry.task_id for entry in emu.ledger)

        clock.advance(5.0)  # the tasks finish while no process waits for them
        async with Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            journal=journal,
            poll=FAST_POLL,
            retry=FAST_RETRY,
        ) as zs:
            unfinished = await zs.unfinished()
            assert sorted(str(record.task_id) for record in unfinished) == created
            handles = await zs.recover()
            assert sorted(handle.id for handle in handles) == created
            saved = [await handle.save(tmp_path / "out") for handle in handles]
            assert await zs.unfinished() == []
        assert emu.billed_counts() == dict.fromkeys(PROMPTS, 1)
    assert all(path.stat().st_size > 0 for paths in saved for path in paths)
    assert not (tmp_path / "never").exists()

"""A PostgreSQL journal URL whose port is out of range is a JournalError, not a crash.

No server is needed or contacted: the port is refused on this machine, before any
connection.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zimage_async import JournalError, Session
from zimage_async._journal import open_journal

from ._cli import cli_env, finished

pytest.importorskip("asyncpg")

PW = "S3cr3t-port-pw"
BASE = "http://127.0.0.1:9/apiv1"  # never contacted: the Session fails while opening


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
async def test_a_port_out_of_range_is_a_journal_error_without_the_password(port: str) -> None:
    """open_journal and Session.open raise JournalError naming the URL, password left out."""
    url = f"postgresql://postgres:{PW}@127.0.0.1:{port}/zimage"
    with pytest.raises(JournalError) as caught:
        await open_journal(url)
    message = str(caught.value)
    assert f"postgresql://postgres@127.0.0.1:{port}/zimage" in message
    assert "port" in message and "65535" in message
    assert PW not in message
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    with pytest.raises(JournalError) as opened:
        async with Session(api_key="k" * 20, base_url=BASE, journal=url):
            pass
    assert PW not in str(opened.value)


async def test_the_command_line_says_so_in_one_line(tmp_path: Path) -> None:
    """``zimage tasks list --journal URL``: exit 2 and one line, no traceback, no password."""
    url = f"postgresql://postgres:{PW}@127.0.0.1:99999/zimage"
    env = cli_env(ZIMAGE_API_KEY="k" * 20, ZIMAGE_BASE_URL=BASE)
    status, _, stderr = await finished("tasks", "list", "--journal", url, env=env, cwd=tmp_path)
    assert status == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "postgresql://postgres@127.0.0.1:99999/zimage" in lines[0]
    assert "65535" in lines[0]
    assert PW not in stderr

"""Opening a PostgreSQL journal that is given up (cancelled, timed out) leaves no pool open."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zimage_async._journal import open_journal

from ._reports import raw_server

asyncpg = pytest.importorskip("asyncpg")


async def test_an_open_cancelled_while_connecting_terminates_its_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that accepts and never answers: the open times out, its pool is ended."""
    pools: list[Any] = []
    create_pool = asyncpg.create_pool

    def recording(*args: Any, **kwargs: Any) -> Any:
        pool = create_pool(*args, **kwargs)
        pools.append(pool)
        return pool

    monkeypatch.setattr(asyncpg, "create_pool", recording)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # never answers; ends when the client goes
        finally:
            writer.close()

    async with raw_server(silent) as base:
        url = base.replace("http://", "postgresql://app:pw@") + "/zimage"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(open_journal(url), 0.5)
    (pool,) = pools
    assert pool.is_closing()

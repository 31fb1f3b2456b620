"""The hand-written baseline: what a user would write with aiohttp alone.

No validation beyond the status code, no retries, no verification of the image bytes:
a create call, GETs of the task, and a GET of the image. Every workload compares the SDK
with loops built from these calls.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

__all__ = ["RawClient"]

CHUNK_BYTES = 64 * 1024


class RawClient:
    """An ``aiohttp.ClientSession`` with the three calls of the task API."""

    def __init__(self, base_url: str, api_key: str, *, max_connections: int = 100) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._max_connections = max_connections
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RawClient:
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        """The open aiohttp session."""
        assert self._http is not None, "use `async with RawClient(...)`"
        return self._http

    async def create(self, prompt: str, *, size: str | None = None, seed: int | None = None) -> Any:
        """POST a generation task; return the task JSON."""
        body: dict[str, object] = {"model": "z-image-turbo", "prompt": prompt}
        if size is not None:
            body["size"] = size
        if seed is not None:
            body["seed"] = seed
        async with self.http.post(
            f"{self._base_url}/v1/images/generations", json=body, headers=self._headers
        ) as response:
            response.raise_for_status()
            return await response.json()

    async def get_task(self, task_id: str) -> Any:
        """GET the task JSON."""
        async with self.http.get(
            f"{self._base_url}/v1/tasks/{task_id}", headers=self._headers
        ) as response:
            response.raise_for_status()
            return await response.json()

    async def poll(self, task: Any, *, interval: float, max_polls: int = 10_000) -> Any:
        """Poll every *interval* seconds until the task is completed or failed."""
        for _ in range(max_polls):
            if task["status"] in ("completed", "failed"):
                return task
            await asyncio.sleep(interval)
            task = await self.get_task(task["id"])
        raise TimeoutError(f"task {task['id']} still {task['status']} after {max_polls} polls")

    async def fetch(self, url: str) -> bytes:
        """GET an image into memory."""
        async with self.http.get(url) as response:
            response.raise_for_status()
            return await response.read()

    async def save(self, url: str, folder: Path, name: str) -> Path:
        """Stream an image to ``folder/name`` through a temporary file, like the SDK does."""
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".raw-", suffix=".part")
        target = folder / name
        async with self.http.get(url) as response:
            response.raise_for_status()
            with os.fdopen(fd, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    file.write(chunk)
        os.replace(temp, target)
        return target

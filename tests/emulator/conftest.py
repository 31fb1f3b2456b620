"""Shared fixtures for the emulator tests: a raw HTTP client, schema validators, clocks."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from importlib import resources
from typing import Any

import aiohttp
import attrs
import jsonschema  # type: ignore[import-untyped,unused-ignore]
import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]
from multidict import CIMultiDictProxy
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from zimage_async.emulator import Emulator, ManualClock
from zimage_async.pytest_plugin import EmulatorFactory, zimage_emulator, zimage_emulator_factory

__all__ = ["zimage_emulator", "zimage_emulator_factory"]

CREATE_PATH = "/v1/images/generations"
GOOD_BODY: dict[str, object] = {"model": "z-image-turbo", "prompt": "a cute cat", "size": "1:1"}


@attrs.frozen
class Reply:
    """A raw HTTP reply: status, headers and body bytes."""

    status: int
    headers: CIMultiDictProxy[str]
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)


class Api:
    """A thin raw-HTTP helper for one emulator (deliberately not the SDK client)."""

    def __init__(self, session: aiohttp.ClientSession, emulator: Emulator) -> None:
        self.session = session
        self.emulator = emulator

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.emulator.api_key}"}

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> Reply:
        body = io.BytesIO(data) if data is not None and len(data) > 1_000_000 else data
        async with self.session.request(method, url, headers=headers, data=body) as response:
            return Reply(response.status, response.headers, await response.read())

    async def create_raw(self, data: bytes, *, headers: Mapping[str, str] | None = None) -> Reply:
        url = self.emulator.base_url + CREATE_PATH
        sent = {**self.auth(), "Content-Type": "application/json"} if headers is None else headers
        return await self.request("POST", url, headers=sent, data=data)

    async def create(self, **fields: object) -> Reply:
        return await self.create_raw(json.dumps({**GOOD_BODY, **fields}).encode())

    async def create_task(self, **fields: object) -> dict[str, Any]:
        reply = await self.create(**fields)
        assert reply.status == 200, reply.data
        body: dict[str, Any] = reply.json()
        return body

    async def task(self, task_id: str, *, headers: Mapping[str, str] | None = None) -> Reply:
        url = f"{self.emulator.base_url}/v1/tasks/{task_id}"
        return await self.request("GET", url, headers=self.auth() if headers is None else headers)

    async def task_body(self, task_id: str) -> dict[str, Any]:
        reply = await self.task(task_id)
        assert reply.status == 200, reply.data
        body: dict[str, Any] = reply.json()
        return body

    async def wait_for_status(
        self, task_id: str, statuses: set[str], *, deadline_seconds: float = 10.0
    ) -> dict[str, Any]:
        """Poll (bounded by a deadline) until the task reaches one of *statuses*."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_seconds
        while loop.time() < deadline:
            body = await self.task_body(task_id)
            if body["status"] in statuses:
                return body
            await asyncio.sleep(0.01)
        raise AssertionError(f"task {task_id} did not reach {statuses} in {deadline_seconds} s")

    async def completed_task(self, **fields: object) -> dict[str, Any]:
        created = await self.create_task(**fields)
        return await self.wait_for_status(created["id"], {"completed"})


ApiFactory = Callable[..., Awaitable[Api]]
Eventually = Callable[[Callable[[], bool]], Awaitable[None]]


@pytest.fixture
def eventually() -> Eventually:
    """Return a bounded poll: wait (at most 10 s) until a condition on recorded state holds."""

    async def wait(condition: Callable[[], bool]) -> None:
        for _ in range(1000):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("condition did not become true within 10 s")

    return wait


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def api(session: aiohttp.ClientSession, zimage_emulator: Emulator) -> Api:
    """Raw HTTP access to the default fast emulator."""
    return Api(session, zimage_emulator)


@pytest.fixture
async def api_factory(
    session: aiohttp.ClientSession, zimage_emulator_factory: EmulatorFactory
) -> ApiFactory:
    """Start an emulator with the given options and return raw HTTP access to it."""

    async def make(**options: object) -> Api:
        return Api(session, await zimage_emulator_factory(**options))

    return make


@pytest.fixture
async def strict_api(api_factory: ApiFactory) -> Api:
    """An emulator applying the documented callback rules (callback_mode="strict")."""
    return await api_factory(callback_mode="strict")


@pytest.fixture
async def manual_api(api_factory: ApiFactory, clock: ManualClock) -> Api:
    """An emulator on a ManualClock: 10 s tasks, 1 s in the queue."""
    return await api_factory(clock=clock, task_duration=10.0, queue_delay=1.0, seed=7)


def _openapi() -> dict[str, Any]:
    text = resources.files("zimage_async.emulator").joinpath("openapi.yaml").read_text("utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


@pytest.fixture(scope="session")
def openapi() -> dict[str, Any]:
    return _openapi()


SchemaCheck = Callable[[str, object], None]


@pytest.fixture(scope="session")
def validate(openapi: dict[str, Any]) -> SchemaCheck:
    """Validate a value against ``components/schemas/<name>`` of the shipped openapi.yaml."""
    uri = "urn:zimage:openapi"
    registry: Registry[Any] = Registry().with_resource(
        uri, Resource.from_contents(openapi, default_specification=DRAFT202012)
    )

    def check(name: str, value: object) -> None:
        schema = {"$ref": f"{uri}#/components/schemas/{name}"}
        jsonschema.Draft202012Validator(schema, registry=registry).validate(value)

    return check

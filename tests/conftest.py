"""Shared fixtures: an emulator on 127.0.0.1 and a Session with fast schedules."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
import trustme
from aiohttp import web
from PIL import Image as PILImage

from zimage_async import PollSchedule, RetryPolicy, Session
from zimage_async._journal import Journal, open_journal
from zimage_async.emulator import Emulator
from zimage_async.pytest_plugin import EmulatorFactory

from ._postgres import PostgresServer, throwaway_server
from ._reports import CapturingTransport

ROOT = Path(__file__).resolve().parents[1]

#: Polls and retries fast enough for tests on an emulator whose tasks take 50 ms.
FAST_POLL = PollSchedule(wait_min=0.01, wait_max=0.05, timeout=20.0)
FAST_RETRY = RetryPolicy(wait_initial=0.01, wait_max=0.05, max_attempts=5)


@pytest.fixture(autouse=True)
def _private_state_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Give each test its own state directory, where `zimage` keeps its default journal."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    monkeypatch.delenv("ZIMAGE_JOURNAL", raising=False)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the module using it, removed afterwards.

    Skipped (outside CI) when no PostgreSQL binaries are found: see ``tests/_postgres.py``.
    """
    with throwaway_server() as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database on the throwaway PostgreSQL server."""
    return postgres.create_database()


@pytest.fixture(params=["sqlite", "postgres"])
def journal_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where an empty journal of each kind lives (a file, a PostgreSQL database URL).

    A module of PostgreSQL-only tests overrides it with ``pg_url``.
    """
    if request.param == "sqlite":
        return str(tmp_path / "j.sqlite")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def journal(journal_target: str) -> AsyncIterator[Journal]:
    """An empty journal at :func:`journal_target`, closed after the test.

    Modules whose ``journal`` is something else define their own, which wins.
    """
    opened = await open_journal(journal_target)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def sentry() -> Iterator[CapturingTransport]:
    """Sentry's SDK initialised with its default settings and an in-memory transport."""
    capture = CapturingTransport()
    sentry_sdk.init(dsn="https://public@sentry.invalid/1", transport=capture)
    try:
        yield capture
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # an inactive client again for the other tests


@pytest.fixture
async def emulator(zimage_emulator_factory: EmulatorFactory) -> Emulator:
    """An emulator whose tasks finish in about 50 ms (the shipped plugin's factory)."""
    return await zimage_emulator_factory(task_duration=0.05, seed=1, callback_mode="strict")


async def until(condition: Callable[[], bool], *, deadline: float = 10.0) -> None:
    """Yield to the loop until *condition* holds; fail after *deadline* seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        assert loop.time() < end, "condition not reached before the deadline"
        await asyncio.sleep(0.005)


async def settled(count: Callable[[], int], *, quiet: float, deadline: float = 10.0) -> int:
    """Return *count* once it has not changed for *quiet* seconds (fail after *deadline*)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    value, since = count(), loop.time()
    while loop.time() - since < quiet:
        assert loop.time() < end, "the count kept changing until the deadline"
        await asyncio.sleep(0.005)
        if count() != value:
            value, since = count(), loop.time()
    return value


@pytest.fixture
async def zs(emulator: Emulator) -> AsyncIterator[Session]:
    """An open Session pointed at the emulator."""
    async with Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        seed=1,
    ) as session:
        yield session


KEY = "sk-test-0123456789"


def _png(size: tuple[int, int] = (400, 400)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


ImageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CompletedHost:
    """A loopback gateway whose every task is completed, with one link to *image*.

    A create answers a pending task; every read of it answers it completed at once, its
    one result :meth:`link` (``/img/0.png`` on this host unless a subclass says
    otherwise), which *image* serves at *route*. ``prompts`` maps each task made by
    :meth:`create` to its prompt. Serve ``app`` with :func:`serving` into ``base``.
    """

    def __init__(self, image: ImageHandler, *, route: str = "/img/0.png") -> None:
        self.prompts: dict[str, str] = {}
        self.base = ""
        self.app = web.Application()
        self.app.router.add_post("/apiv1/v1/images/generations", self.create)
        self.app.router.add_get("/apiv1/v1/tasks/{task_id}", self.task)
        self.app.router.add_get(route, image)

    async def create(self, request: web.Request) -> web.StreamResponse:
        task_id = f"task-unified-1-{len(self.prompts)}"
        self.prompts[task_id] = (await request.json())["prompt"]
        return web.json_response({"id": task_id, "status": "pending", "progress": 0})

    def link(self, task_id: str) -> str:
        """The one image link of task *task_id*."""
        return f"{self.base}/img/0.png"

    def completed(self, task_id: str) -> dict[str, object]:
        """What a read of task *task_id* answers: completed, with its one link."""
        return {
            "id": task_id,
            "status": "completed",
            "progress": 100,
            "results": [self.link(task_id)],
        }

    async def task(self, request: web.Request) -> web.Response:
        return web.json_response(self.completed(request.match_info["task_id"]))


class OddHost(CompletedHost):
    """A loopback API + image host that misbehaves in chosen ways, recording headers.

    The prompt of a create call picks the behaviour: the task it returns completes at
    once, with one image link at ``/img/<prompt>``.
    """

    def __init__(self) -> None:
        super().__init__(self.image, route="/img/{kind}")
        self.image_headers: list[dict[str, str]] = []
        self.creates = 0
        self.busy_images = 0

    async def create(self, request: web.Request) -> web.StreamResponse:
        self.creates += 1
        body = await request.json()
        kind = body["prompt"]
        if kind == "redirect-api":
            raise web.HTTPTemporaryRedirect(f"{self.base}/elsewhere")
        if kind == "bare-503":
            return web.Response(
                status=503, text="<html>Service Unavailable</html>", content_type="text/html"
            )
        if kind == "in-pieces":
            reply = web.StreamResponse()  # chunked: the body arrives in two writes
            reply.content_type = "application/json"
            await reply.prepare(request)
            text = json.dumps({"id": "task-unified-1-ok", "status": "pending", "progress": 0})
            await reply.write(text[:20].encode())
            await asyncio.sleep(0.05)  # the scenario itself: a reply that trickles in
            await reply.write(text[20:].encode())
            await reply.write_eof()
            return reply
        return web.json_response(
            {"id": f"task-unified-1-{kind}", "status": "pending", "progress": 0}
        )

    def link(self, task_id: str) -> str:
        return f"{self.base}/img/{task_id.removeprefix('task-unified-1-')}"

    def completed(self, task_id: str) -> dict[str, object]:
        reply = super().completed(task_id)
        if task_id.removeprefix("task-unified-1-") == "noresults":
            del reply["results"]
        return reply

    async def image(self, request: web.Request) -> web.StreamResponse:
        self.image_headers.append(dict(request.headers))
        kind = request.match_info["kind"]
        if kind == "html":
            return web.Response(text="<!doctype html><h1>Not here</h1>", content_type="text/html")
        if kind == "mislabelled":
            return web.Response(body=_png(), content_type="image/jpeg")
        if kind == "huge":  # noise does not compress: about 480 kB
            noise = PILImage.frombytes("RGB", (400, 400), random.Random(0).randbytes(480_000))
            buffer = io.BytesIO()
            noise.save(buffer, format="PNG")
            return web.Response(body=buffer.getvalue(), content_type="image/png")
        if kind == "forbidden":
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")
        if kind == "gone":
            return web.Response(status=410, text="Gone")
        if kind == "tiny":
            return web.Response(body=b"\x89PN", content_type="image/png")
        if kind == "busy" and self.busy_images < 2:
            self.busy_images += 1
            status = 429 if self.busy_images == 1 else 503
            return web.Response(status=status, text="slow down", headers={"Retry-After": "0"})
        if kind == "redirect":
            raise web.HTTPFound(self.base.replace("127.0.0.1", "localhost") + "/img/ok")
        return web.Response(body=_png(), content_type="image/png")


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve *app* on 127.0.0.1 at a free port; yield its base URL, stop it on exit."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def loopback_session(base: str, **options: Any) -> Session:
    """A Session with the test key and fast schedules for a server at *base* (``/apiv1``)."""
    schedules: dict[str, Any] = {"poll": FAST_POLL, "retry": FAST_RETRY}
    return Session(api_key=KEY, base_url=f"{base}/apiv1", **(schedules | options))


@pytest.fixture
async def odd_host() -> AsyncIterator[OddHost]:
    host = OddHost()
    async with serving(host.app) as host.base:
        yield host


@pytest.fixture
async def odd_session(odd_host: OddHost) -> AsyncIterator[Session]:
    async with Session(
        api_key=KEY,
        base_url=f"{odd_host.base}/apiv1",
        poll=FAST_POLL,
        retry=FAST_RETRY,
        max_image_bytes=200_000,
    ) as session:
        yield session


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A test certificate authority, for HTTPS servers on 127.0.0.1."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    """The test CA's certificate as a PEM file, for ``ca_bundle`` and ``SSL_CERT_FILE``."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def run_example(source: str, tmp_path: Path) -> tuple[int, str, int]:
    """Run *source* as a script with ZIMAGE_* pointing at a fresh emulator.

    Returns the exit code, the standard error, and how many tasks the emulator billed.
    """
    async with Emulator(task_duration=0.2, seed=4) as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
        env |= {"ZIMAGE_API_KEY": emu.api_key, "ZIMAGE_BASE_URL": emu.base_url}
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
        script = tmp_path / "example.py"
        script.write_text(source, encoding="utf-8")
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(child.communicate(), timeout=120)
        return child.returncode or 0, err.decode(), len(emu.ledger)

"""Pytest fixtures for testing code that talks to Z-Image Turbo, backed by the emulator.

Installed with ``zimage-async`` and registered through the ``pytest11`` entry point, so the
fixtures are available in every test session without imports. They are async fixtures:
they work with pytest-asyncio in ``auto`` mode, and in ``strict`` mode too, because they
are declared with ``pytest_asyncio.fixture`` when pytest-asyncio is installed.

The entry point is named after this module, ``zimage_async.pytest_plugin``, so the usual
ways of loading a plugin by hand work too, beside the entry point or with plugin
autoloading off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``): ``-p zimage_async.pytest_plugin``
on the command line, or ``pytest_plugins = ["zimage_async.pytest_plugin"]`` in a top-level
``conftest.py``. ``-p no:zimage_async.pytest_plugin`` turns it off.

Fixtures:

``zimage_emulator``
    A started :class:`~zimage_async.emulator.Emulator` with fast tasks (0.05 s),
    loopback callbacks allowed (``callback_mode="permissive"``) and callback retry delays
    of 0.01 s; it is closed after the test. Use ``emulator.base_url`` and
    ``emulator.api_key`` to point a client at it.

``zimage_emulator_factory``
    A callable taking :class:`~zimage_async.emulator.Emulator` keyword options and
    returning a started emulator (awaited), for tests that need a
    :class:`~zimage_async.emulator.ManualClock`, a fault plan or other options. Every
    emulator it made is closed after the test::

        async def test_slow_tasks(zimage_emulator_factory):
            emulator = await zimage_emulator_factory(task_duration=2.0)

``zimage_session``
    An open :class:`zimage_async.Session` pointed at ``zimage_emulator``, with poll and
    retry schedules scaled to its fast tasks (polls every 10-50 ms, retries after
    10-50 ms); it is closed after the test::

        async def test_my_service(zimage_session):
            result = await zimage_session.generate("a cat")
            assert result.images[0].content_type == "image/png"

Importing this module, which every pytest run does once zimage-async is installed, imports
the ``zimage_async`` package, and with it aiohttp (a fraction of a second, once per
run), because this module lives in that package. Only the emulator waits: it is
imported when a fixture is first used. ``-p no:zimage_async.pytest_plugin`` skips it all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from zimage_async import Session
    from zimage_async.emulator import Emulator

# This module loads in every pytest run where zimage-async is installed: it must not
# fail there, whatever pytest-asyncio is (before 0.17, it has no ``fixture``; its own
# mode runs plain async fixtures).
try:
    import pytest_asyncio

    _async_fixture: Callable[..., Any] = getattr(pytest_asyncio, "fixture", pytest.fixture)
except ImportError:  # pragma: no cover - pytest-asyncio is needed to run async fixtures
    _async_fixture = pytest.fixture

__all__ = ["EmulatorFactory", "zimage_emulator", "zimage_emulator_factory", "zimage_session"]

EmulatorFactory = Callable[..., Awaitable["Emulator"]]
"""The type of the ``zimage_emulator_factory`` fixture."""

FAST_DEFAULTS: dict[str, object] = {
    "task_duration": 0.05,
    "callback_mode": "permissive",
    "callback_retry_delays": (0.01, 0.01, 0.01),
}
"""Options the fixtures use unless a test passes its own."""


@_async_fixture
async def zimage_emulator_factory() -> AsyncIterator[EmulatorFactory]:
    """Yield a coroutine function that starts emulators with the given options."""
    from zimage_async.emulator import Emulator

    started: list[Emulator] = []

    async def start(**options: Any) -> Emulator:
        emulator = Emulator(**{**FAST_DEFAULTS, **options})
        started.append(emulator)
        await emulator.start()
        return emulator

    try:
        yield start
    finally:
        for emulator in reversed(started):
            await emulator.close()


@_async_fixture
async def zimage_emulator(zimage_emulator_factory: EmulatorFactory) -> Emulator:
    """Return a started emulator with fast tasks, closed after the test."""
    return await zimage_emulator_factory()


@_async_fixture
async def zimage_session(zimage_emulator: Emulator) -> AsyncIterator[Session]:
    """Yield an open Session on ``zimage_emulator`` with schedules fit for fast tasks."""
    from zimage_async import PollSchedule, RetryPolicy, Session

    async with Session(
        api_key=zimage_emulator.api_key,
        base_url=zimage_emulator.base_url,
        poll=PollSchedule(wait_min=0.01, wait_max=0.05, timeout=30.0),
        retry=RetryPolicy(wait_initial=0.01, wait_max=0.05),
    ) as session:
        yield session

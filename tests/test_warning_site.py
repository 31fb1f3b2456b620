"""A warning of the package points at the caller's line, else at the package's own line."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import pytest

from zimage_async import ImageSizeWarning, PollSchedule, RetryPolicy, Session
from zimage_async import _delivery as delivery
from zimage_async.pytest_plugin import EmulatorFactory

FAST_POLL = PollSchedule(wait_min=0.01, wait_max=0.05, timeout=20.0)
FAST_RETRY = RetryPolicy(wait_initial=0.01, wait_max=0.05, max_attempts=5)
DELIVERY = Path(delivery.__file__).resolve()


@pytest.fixture(autouse=True)
def _resized(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every image differs from the size asked for (a CDN that resizes them)."""
    monkeypatch.setattr(delivery, "size_mismatch", lambda size, dimensions: "resized")


async def _session(factory: EmulatorFactory, images: int) -> Session:
    emulator = await factory(task_duration=0.05, seed=1, images_per_task=images)
    return Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    )


@pytest.mark.parametrize("images", [1, 2])
@pytest.mark.parametrize("how", ["await", "generate", "save"])
async def test_an_image_size_warning_points_at_the_callers_line(
    zimage_emulator_factory: EmulatorFactory, tmp_path: Path, images: int, how: str
) -> None:
    """``await handle``, ``generate()`` and ``save()``: the line of this file that called."""
    async with await _session(zimage_emulator_factory, images) as zs:
        handle = await zs.submit("a fox", size="1024x1024")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if how == "await":
                line = _line()
                await handle
            elif how == "generate":
                line = _line()
                await zs.generate("a fox", size="1024x1024")
            else:
                line = _line()
                await handle.save(tmp_path)
    sizes = [w for w in caught if issubclass(w.category, ImageSizeWarning)]
    assert len(sizes) == images
    assert {(Path(w.filename).resolve(), w.lineno) for w in sizes} == {
        (Path(__file__).resolve(), line + 1)
    }


def _line() -> int:
    """The line number of the caller's line."""
    import inspect

    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


async def test_without_a_caller_of_the_users_the_warning_is_the_packages(
    zimage_emulator_factory: EmulatorFactory,
) -> None:
    """Awaited by a task of the loop's own, the warning points at the package's line."""
    async with await _session(zimage_emulator_factory, 1) as zs:
        handle = await zs.submit("a fox", size="1024x1024")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await asyncio.ensure_future(handle.result())
    (warning,) = [w for w in caught if issubclass(w.category, ImageSizeWarning)]
    assert Path(warning.filename).resolve() == DELIVERY


async def test_a_filter_by_the_packages_module_matches_the_packages_warning(
    zimage_emulator_factory: EmulatorFactory,
) -> None:
    """``filterwarnings(module="zimage_async")`` catches a warning with no caller of yours."""
    async with await _session(zimage_emulator_factory, 1) as zs:
        handle = await zs.submit("a fox", size="1024x1024")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.filterwarnings("error", category=ImageSizeWarning, module="zimage_async")
            with pytest.raises(ImageSizeWarning):
                await asyncio.ensure_future(handle.result())


@pytest.mark.parametrize("how", ["await", "save"])
async def test_a_size_warning_made_an_error_rejects_the_images_every_time(
    zimage_emulator_factory: EmulatorFactory, tmp_path: Path, how: str
) -> None:
    """As an error, the warning keeps the images out: nothing cached, no file placed.

    The images were cached, and the files put in place, before the warning was issued:
    the first call raised, the second returned them without a word.
    """
    async with await _session(zimage_emulator_factory, 1) as zs:
        handle = await zs.submit("a fox", size="1024x1024")
        with warnings.catch_warnings():
            warnings.simplefilter("error", ImageSizeWarning)
            for _ in range(2):
                call = handle.result() if how == "await" else handle.save(tmp_path)
                with pytest.raises(ImageSizeWarning):
                    await call
                assert not [path for path in tmp_path.iterdir() if not path.name.startswith(".")]

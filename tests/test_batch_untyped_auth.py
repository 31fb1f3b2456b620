"""A batch stops sending creates after a 401 or 403 page without the API's envelope.

An untyped 401/403 (a proxy's HTML page, or a gateway's own page) to a create is never
taken as a certain refusal: the item stays uncertain, as any untyped answer does. But it
says the key is refused, so the batch stops sending creates, as it does after a typed
401/403: a dead key behind a proxy must not send every item of a large batch.
"""

from __future__ import annotations

from pathlib import Path

from zimage_async import (
    AuthenticationError,
    BatchItem,
    PermissionDeniedError,
    Session,
    SubmissionUncertainError,
    ZImageError,
)

from .test_create_outcomes import Gateway, gateway, gs, html

__all__ = ["gateway", "gs"]  # the fixtures this module uses


async def _run(
    gs: Session, prompts: list[str], tmp_path: Path
) -> tuple[list[BatchItem], ZImageError | None]:
    async with gs.generate_many(prompts, concurrency=1, output_dir=tmp_path) as batch:
        items = [item async for item in batch]
    return items, batch.stopped_by


async def test_an_untyped_401_stops_the_batch_after_one_create(
    gateway: Gateway, gs: Session, tmp_path: Path
) -> None:
    """One POST: its item is uncertain, the rest are not sent, the stop names the key."""
    for _ in range(4):
        gateway.then(html(401), makes_task=False)
    items, stopped_by = await _run(gs, ["a", "b", "c", "d"], tmp_path)
    assert len(gateway.posts) == 1
    by_index = {item.index: item for item in items}
    assert isinstance(by_index[0].error, SubmissionUncertainError)
    assert isinstance(stopped_by, AuthenticationError)
    assert "the batch stopped sending creates" in str(stopped_by)
    assert "ZIMAGE_API_KEY" in str(stopped_by)
    for index in (1, 2, 3):
        assert by_index[index].error is stopped_by


async def test_an_untyped_403_stops_the_batch_too(
    gateway: Gateway, gs: Session, tmp_path: Path
) -> None:
    """A 403 page: the same stop, as a PermissionDeniedError."""
    for _ in range(3):
        gateway.then(html(403), makes_task=False)
    _, stopped_by = await _run(gs, ["a", "b", "c"], tmp_path)
    assert len(gateway.posts) == 1
    assert isinstance(stopped_by, PermissionDeniedError)


async def test_an_untyped_500_does_not_stop_the_batch(
    gateway: Gateway, gs: Session, tmp_path: Path
) -> None:
    """Other untyped pages leave the batch going: each item is sent once."""
    for _ in range(3):
        gateway.then(html(500), makes_task=False)
    _, stopped_by = await _run(gs, ["a", "b", "c"], tmp_path)
    assert stopped_by is None
    assert len(gateway.posts) == 3

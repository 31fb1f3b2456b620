"""The batch part of :class:`Session`: :meth:`generate_many`, which makes a :class:`Batch`.

:class:`BatchMethods` is a base of :class:`Session`; the batch engine is :mod:`._batch`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ._batch import Batch
from ._batchitems import BatchServices, check_requests
from ._batchoptions import (
    DEFAULT_LEASE,
    BatchOptions,
    check_batch_id,
    check_cost,
    check_flag,
    check_lease,
    check_numbers,
    check_output_dir,
    check_output_names,
    check_spend_type,
    check_worker_id,
)
from ._exceptions import InvalidRequestError
from ._handle import TaskHandle
from ._journal import check_journal_target, is_postgres_url
from ._journaling import check_max_credits
from ._models import GenerationRequest
from ._naming import BATCH_NAME, check_template
from ._quoting import a_type, number_or_type
from ._runtime import DEFAULT, wait_limit

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._journaling import Bookkeeper
    from ._runtime import Runtime

#: The most items a batch worker runs at once (its requests are bounded by the session's
#: max_connections besides).
MAX_CONCURRENCY = 10_000

__all__ = ["BatchMethods"]


class BatchMethods:
    """:meth:`generate_many`; mixed into Session."""

    _book: Bookkeeper | None
    _runtime: Runtime
    _base_url: str
    _check_open: Callable[[], None]

    def _task(self, task_id: str, *, request: GenerationRequest | None = None) -> TaskHandle:
        raise NotImplementedError

    async def _create(self, request: GenerationRequest, key: str | None) -> TaskHandle:
        raise NotImplementedError

    def _outgoing(self, request: GenerationRequest) -> GenerationRequest:
        raise NotImplementedError

    def generate_many(
        self,
        requests: Iterable[str | GenerationRequest],
        *,
        concurrency: int = 8,
        output_dir: str | os.PathLike[str] | None = None,
        journal: str | os.PathLike[str] | None = None,
        manifest: str | os.PathLike[str] | None = None,
        batch_id: str = "default",
        worker_id: str | None = None,
        lease: float = DEFAULT_LEASE,
        timeout: float | None = DEFAULT,
        resubmit_uncertain: bool = False,
        resubmit_failed: bool = False,
        resubmit_expired: bool = False,
        max_credits: float | None = None,
        name: str | None = BATCH_NAME,
        numbers: Sequence[int] | None = None,
        cost: float | None = None,
    ) -> Batch:
        """Generate many images, at most *concurrency* at once; iterate for the outcomes.

        *requests* are prompt strings or :class:`GenerationRequest` objects; all are
        validated now (:class:`InvalidRequestError` names the item), before anything is
        sent, as are the other arguments. The returned :class:`Batch` yields one
        :class:`BatchItem` per request, in completion order; a failed item is an outcome
        with ``error`` set, never an exception that stops the batch::

            async with zs.generate_many(prompts, output_dir="out/") as batch:
                async for item in batch:
                    print(item.index, item.paths or item.error)

        With *output_dir*, images are saved there atomically and ``item.paths`` lists
        them; without it, ``item.result`` holds the bytes. Files are named by the *name*
        template (default ``{number:04d}-{slug}-{index}``: the item's number, counting
        from 1 or taken from *numbers*, a slug of its prompt, the image index; the fields
        are ``number``, ``slug``, ``seed``, ``task_id`` and ``index``), so a file says
        which prompt made it; ``name=None`` gives ``<task id>-<n>``. *numbers* are
        distinct integers, one per request. A template that would give two items the same
        file name (``{slug}`` for two prompts of one slug) is refused before anything is
        sent: put ``{number}`` or ``{task_id}`` in it. *timeout* bounds each item's wait
        for its task and the download of its images together, as for
        :meth:`TaskHandle.save`: finite seconds above 0, or None for no limit (default:
        the session's poll schedule).

        The batch runs on a journal: the session's (``Session(journal=...)``), else
        *journal* (a file path or a ``postgresql://`` URL, for this batch only; *manifest*
        is its earlier name, and an old manifest file is taken over), else one in memory
        that ends with the batch. With a durable journal a rerun never pays twice for an
        item that has a task, and any number of workers (processes, machines) running
        the same *batch_id* on the same journal share the batch: each item is claimed
        with a lease of *lease* seconds, renewed while the worker works on it, and taken
        over by another worker when its holder dies. *worker_id* names this worker
        (default: host, process id and a random part). *resubmit_uncertain*,
        *resubmit_failed* and *resubmit_expired* say which items a rerun sends again;
        see :doc:`batches` for the whole table. *max_credits* limits what this batch may
        reserve, counted in the journal by every worker together: the batch stops
        sending creates at the limit, while the items already sent finish, and the rest
        are reported with ``sent=False``. *cost* is each item's expected cost in credits
        (a finite number > 0), checked against *max_credits* before its create is sent
        until the service reports the real one; without it, while no price of the model
        and size is known, one create of them is sent at a time under the limit, and the
        others wait for its price. See :doc:`distributed`.

        .. versionadded:: 0.1.0
        """
        return self._generate_many(
            requests,
            concurrency=concurrency,
            output_dir=output_dir,
            journal=journal,
            manifest=manifest,
            batch_id=batch_id,
            worker_id=worker_id,
            lease=lease,
            timeout=timeout,
            resubmit_uncertain=resubmit_uncertain,
            resubmit_failed=resubmit_failed,
            resubmit_expired=resubmit_expired,
            max_credits=max_credits,
            name=name,
            numbers=numbers,
            cost=cost,
        )

    def _generate_many(
        self,
        requests: Iterable[str | GenerationRequest],
        *,
        concurrency: int,
        output_dir: str | os.PathLike[str] | None,
        journal: str | os.PathLike[str] | None,
        manifest: str | os.PathLike[str] | None,
        batch_id: str,
        worker_id: str | None,
        lease: float,
        timeout: float | None,
        resubmit_uncertain: bool,
        resubmit_failed: bool,
        resubmit_expired: bool,
        max_credits: float | None,
        name: str | None,
        numbers: Sequence[int] | None,
        forget_elsewhere: bool = False,
        cost: float | None = None,
    ) -> Batch:
        try:
            iter(requests)
        except TypeError:
            rule = "an iterable of prompt strings or GenerationRequest objects, such as a list"
            raise InvalidRequestError("requests", rule, f"got {a_type(requests)}") from None
        checked = check_requests(requests)
        if name is not None:
            check_template(name, number=1)
        numbered = check_numbers(numbers, len(checked))
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not (1 <= concurrency <= MAX_CONCURRENCY)
        ):
            raise InvalidRequestError(
                "concurrency",
                f"an integer from 1 to {MAX_CONCURRENCY}",
                f"got {number_or_type(concurrency)}",
            )
        folder = check_output_dir(output_dir)
        if folder is not None:
            check_output_names(name, checked, numbered)
        target = _batch_journal(journal, manifest, session_journal=self._book is not None)
        durable = self._book is not None or target is not None
        max_credits = check_spend_type(max_credits)
        limit = check_max_credits(
            max_credits, journal="journal" if durable else None, name="max_credits"
        )
        options = BatchOptions(
            concurrency=concurrency,
            output_dir=folder,
            journal=target,
            batch_id=check_batch_id(batch_id),
            worker_id=check_worker_id(worker_id),
            lease=check_lease(lease),
            timeout=wait_limit(timeout, self._runtime.poll),
            resubmit_uncertain=check_flag(resubmit_uncertain, "resubmit_uncertain"),
            resubmit_failed=check_flag(resubmit_failed, "resubmit_failed"),
            resubmit_expired=check_flag(resubmit_expired, "resubmit_expired"),
            max_credits=limit,
            name=name,
            numbers=numbered,
            forget_elsewhere=forget_elsewhere,
            cost=check_cost(cost),
        )
        self._check_open()

        services = BatchServices(
            send=self._create,
            outgoing=self._outgoing,
            task=self._task,
            gate_wait=self._runtime.api.gate.wait,
            base_url=self._base_url,
            link_ttl=self._runtime.link_ttl,
            book=self._book,
        )
        return Batch(services, checked, options)


def _batch_journal(
    journal: str | os.PathLike[str] | None,
    manifest: str | os.PathLike[str] | None,
    *,
    session_journal: bool,
) -> str | os.PathLike[str] | None:
    """Return the batch's own journal target, checking *journal* and *manifest*."""
    if journal is not None and manifest is not None:
        raise InvalidRequestError(
            "manifest", "the earlier name of journal=", "pass journal= or manifest=, not both"
        )
    field = "journal" if manifest is None else "manifest"
    target = journal if journal is not None else manifest
    if target is None:
        return None
    if session_journal:
        raise InvalidRequestError(
            field,
            "a batch's own journal, only for a Session opened without journal=",
            f"this Session keeps a journal, and its batches run on it; leave out {field}=",
        )
    if manifest is not None and is_postgres_url(manifest):
        raise InvalidRequestError(
            "manifest", "a file path", "for a postgresql:// URL, pass journal= instead"
        )
    check_journal_target(field, target)  # never quoted: a URL may hold a password
    return target

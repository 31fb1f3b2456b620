"""zimage-async: the asyncio SDK for the Z-Image Turbo image-generation API.

>>> import zimage_async
>>> sorted(zimage_async.__all__)[:3]
['APIConnectionError', 'APIError', 'APITimeoutError']

Start with :class:`Session`; see the documentation for the whole tour.
"""

from __future__ import annotations

import typing as _typing

from ._batch import Batch, BatchItem, BatchProgress, BatchStats, ItemState
from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ImageBlockedError,
    ImageDownloadError,
    ImageExpiredError,
    ImageLinkRefusedError,
    ImageSizeWarning,
    InsufficientQuotaError,
    InternalServerError,
    InvalidRequestError,
    JournalError,
    LeaseLostError,
    MalformedResponseError,
    ManifestError,
    NoResultsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    SessionClosedError,
    SpendLimitError,
    SubmissionUncertainError,
    TaskFailedError,
    UpstreamError,
    WaitTimeoutError,
    ZImageError,
)
from ._handle import TaskHandle
from ._journal_records import JournalRecord, JournalState
from ._journal_spend import Spend
from ._models import (
    GenerationRequest,
    GenerationResult,
    Image,
    Task,
    TaskErrorDetail,
    TaskInfo,
    TaskStatus,
    Usage,
)
from ._schedule import PollSchedule, RetryPolicy
from ._session import DEFAULT_BASE_URL as _DEFAULT_BASE_URL
from ._session import Session, SessionState
from ._version import __version__

if _typing.TYPE_CHECKING:
    from ._webhooks import CallbackReceiver

# Bound here, not only imported, so that the API reference shows each constant's own
# comment below: autodoc reads it from this module, and would else show a string with
# the docstring of str itself and a mapping with none.

#: The production API's base URL, used when neither ``base_url=`` nor
#: ``$ZIMAGE_BASE_URL`` is given.
DEFAULT_BASE_URL = _DEFAULT_BASE_URL

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "Batch",
    "BatchItem",
    "BatchProgress",
    "BatchStats",
    "CallbackReceiver",
    "ConflictError",
    "GenerationRequest",
    "GenerationResult",
    "Image",
    "ImageBlockedError",
    "ImageDownloadError",
    "ImageExpiredError",
    "ImageLinkRefusedError",
    "ImageSizeWarning",
    "InsufficientQuotaError",
    "InternalServerError",
    "InvalidRequestError",
    "ItemState",
    "JournalError",
    "JournalRecord",
    "JournalState",
    "LeaseLostError",
    "MalformedResponseError",
    "ManifestError",
    "NoResultsError",
    "NotFoundError",
    "PermissionDeniedError",
    "PollSchedule",
    "RateLimitError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "Session",
    "SessionClosedError",
    "SessionState",
    "Spend",
    "SpendLimitError",
    "SubmissionUncertainError",
    "Task",
    "TaskErrorDetail",
    "TaskFailedError",
    "TaskHandle",
    "TaskInfo",
    "TaskStatus",
    "UpstreamError",
    "Usage",
    "WaitTimeoutError",
    "ZImageError",
    "__version__",
]


if not _typing.TYPE_CHECKING:  # type checkers see the import above, and no other names

    def __getattr__(name: str) -> object:
        # CallbackReceiver needs aiohttp.web (a server), which most users never load: it
        # is imported on first use, so `import zimage_async` stays cheap.
        if name == "CallbackReceiver":
            from ._webhooks import CallbackReceiver

            return CallbackReceiver
        raise AttributeError(f"module 'zimage_async' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "CallbackReceiver"})

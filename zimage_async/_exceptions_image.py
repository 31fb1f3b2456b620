"""The image download errors, and the warning for an image of an unexpected size.

:class:`ImageDownloadError` and its kinds (expired, blocked, refused link) concern one
image of a completed, billed task; :class:`ImageSizeWarning` is only a warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from ._exceptions_base import SHOWN_MODULE, ZImageError

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "ImageBlockedError",
    "ImageDownloadError",
    "ImageExpiredError",
    "ImageLinkRefusedError",
    "ImageSizeWarning",
]


class _Image(TypedDict):
    """Which image an :class:`ImageDownloadError` concerns: its constructor's keywords."""

    url: str
    task_id: str | None
    index: int | None


class ImageDownloadError(ZImageError):
    """An image could not be downloaded, or its bytes failed verification.

    ``url`` is the link without its query string (signed links are credentials),
    ``task_id`` and ``index`` say which image; ``reason`` says what went wrong.
    """

    __module__ = SHOWN_MODULE

    def __init__(self, reason: str, *, url: str, task_id: str | None, index: int | None):
        self.reason = reason
        self.url = url
        self.task_id = task_id
        self.index = index
        which = f"image {index} of task {task_id}" if task_id is not None else "image"
        super().__init__(f"{which} from {url}: {reason}")


class ImageExpiredError(ImageDownloadError):
    """The image link has expired (links live 24 hours), so the bytes are gone.

    Raised without a request only once 24 hours (the session's ``link_ttl``) have
    passed since completion was seen; before that the host is always asked, and this
    is raised when it answers 404, 410, or a 403 that does not look like a block of
    this client (see :class:`ImageBlockedError`). ``expired_at`` is the known expiry as
    a Unix time, if any (a link's own stated expiry, when it is believable).
    """

    __module__ = SHOWN_MODULE

    def __init__(
        self, reason: str, *, expired_at: float | None = None, **image: Unpack[_Image]
    ) -> None:
        self.expired_at = expired_at
        super().__init__(reason, **image)


class ImageSizeWarning(UserWarning):
    """An image's dimensions differ from the size the request asked for.

    Issued with :func:`warnings.warn` (the image is still returned): ``WIDTHxHEIGHT``
    sizes must match exactly, ratios by aspect within 2 %. Turn it into an error with
    ``warnings.simplefilter("error", ImageSizeWarning)``.
    """

    __module__ = SHOWN_MODULE


class ImageBlockedError(ImageDownloadError):
    """The image host refused (403) a link whose expiry is still ahead.

    That looks like the host blocking this client, not like expiry: CDNs in front of the
    provider's file host refuse clients whose ``User-Agent`` looks like a script
    (Cloudflare error 1010). The SDK sends ``zimage-async/<version>``; set another with
    ``Session(user_agent=...)``. ``expires_at`` is the link's own expiry (Unix time),
    when known.
    """

    __module__ = SHOWN_MODULE

    def __init__(
        self, reason: str, *, expires_at: float | None = None, **image: Unpack[_Image]
    ) -> None:
        self.expires_at = expires_at
        super().__init__(reason, **image)


class ImageLinkRefusedError(ImageDownloadError):
    """The image link, or a redirect from it, points where the SDK never fetches from.

    Raised before connecting, and never retried (asking again cannot change the answer):
    a scheme other than ``https`` (plain ``http`` only while the API itself is on
    loopback), user info in the URL, an internal target (loopback, private, link-local
    such as the cloud metadata address ``169.254.169.254``) unless the API itself is on
    such an address, a host name that resolves to such an address, more redirects than
    allowed, or a redirect loop. ``reason`` says which.
    """

    __module__ = SHOWN_MODULE

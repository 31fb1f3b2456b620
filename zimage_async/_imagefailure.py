"""The errors of one image's download, made in one place (see :mod:`zimage_async._download`).

:class:`Where` names the image (its link without the query, its task and index) in
every error; :class:`Retryable` and :class:`Grace` are the failures the download loop
asks again after.

The task is billed whatever happens to its download, so an error that collecting the
task later can mend says how (:func:`~zimage_async._exceptions_base.note_collectable`):
a plain :class:`ImageDownloadError` (a host that kept failing, a body that failed its
checks, a limit: the host may recover, the limit be raised) and an
:class:`ImageBlockedError` (the link still works for another client). An
:class:`ImageExpiredError` does not (the links are gone), nor does an
:class:`ImageLinkRefusedError` (the same link would be refused again).
"""

from __future__ import annotations

from typing import NamedTuple

from ._exceptions import (
    APIConnectionError,
    ImageBlockedError,
    ImageDownloadError,
    ImageExpiredError,
    ImageLinkRefusedError,
)
from ._exceptions_base import note_collectable
from ._imageinfo import ImageFraming
from ._imagelimits import ImageLimits
from ._links import redact_url
from ._secret import Secret, redact_text

__all__ = [
    "Grace",
    "Retryable",
    "Secrets",
    "Where",
    "earlier_expiry",
    "lifetime_text",
    "malformed",
    "over_time",
]


class Retryable(ImageDownloadError):
    """A transient download failure; ``retry_after`` is the server's advice."""

    retry_after: float | None = None


#: The secrets an image host is never sent, masked in the text of the errors it causes.
Secrets = tuple[Secret, ...]


class Where(NamedTuple):
    """Which image a download is about, for the errors it raises.

    Every reason an error gives passes :meth:`clean`: the host's own text quoted in it
    (a header, a page) has *secrets* and any ``Bearer <token>`` masked.
    """

    link: str  # as received: redacted only when a message names it
    task_id: str | None
    image: int | None  # its index in the task ("index" is a tuple method)
    secrets: Secrets = ()

    def clean(self, reason: str) -> str:
        """Return *reason* with the secrets masked, should the host have echoed them."""
        return redact_text(reason, secrets=[secret.reveal() for secret in self.secrets])

    @property
    def url(self) -> str:
        """The link as messages name it, without its query string (a signed link's key)."""
        return redact_url(self.link)

    def fail(self, reason: str) -> ImageDownloadError:
        error = ImageDownloadError(
            self.clean(reason), url=self.url, task_id=self.task_id, index=self.image
        )
        return error if self.task_id is None else note_collectable(error, self.task_id)

    def said(self, exc: ImageDownloadError | APIConnectionError) -> str:
        """Say what *exc*, one attempt's failure, says, without naming this image again."""
        if isinstance(exc, ImageDownloadError):
            return exc.reason
        return str(exc).removeprefix(f"GET {self.url}: ")  # a redirect's hop stays named

    def lapsed(self, lifetime: float, expires_at: float | None) -> ImageExpiredError:
        """Say that the links' *lifetime* (seconds from completion) is over: nothing requested."""
        return self.expired(
            f"the link expired (image links are valid for {lifetime_text(lifetime)} after "
            "completion); nothing was requested",
            expires_at,
        )

    def expired(self, reason: str, expires_at: float | None) -> ImageExpiredError:
        return ImageExpiredError(
            self.clean(reason),
            url=self.url,
            task_id=self.task_id,
            index=self.image,
            expired_at=expires_at,
        )

    def blocked(
        self, evidence: str, user_agent: str, expires_at: float | None
    ) -> ImageBlockedError:
        reason = (
            f"the image host refused the link (403) although {evidence}: this looks like a "
            "block of this client, not expiry (bot protection such as Cloudflare error 1010 "
            f"refuses User-Agents that look like scripts). The request sent User-Agent "
            f"{user_agent!r}; set another with Session(user_agent=...)"
        )
        error = ImageBlockedError(
            self.clean(reason),
            url=self.url,
            task_id=self.task_id,
            index=self.image,
            expires_at=expires_at,
        )
        return error if self.task_id is None else note_collectable(error, self.task_id)

    def refused(self, reason: str) -> ImageLinkRefusedError:
        return ImageLinkRefusedError(
            f"{self.clean(reason)}; not fetched, and not retried",
            url=self.url,
            task_id=self.task_id,
            index=self.image,
        )

    def transient(self, reason: str, retry_after: float | None = None) -> Retryable:
        error = Retryable(self.clean(reason), url=self.url, task_id=self.task_id, index=self.image)
        error.retry_after = retry_after
        return error


def over_time(
    limits: ImageLimits, *, asked: float = 0.0, wait: float = 0.0, left: float = 0.0
) -> str:
    """Say that the download cannot end within its total limit.

    With *asked* (the host's Retry-After), the next try's *wait* would pass the *left*
    seconds of the limit.
    """
    total = f"{limits.total_timeout:g} s total limit for one image (ImageLimits.total_timeout)"
    if asked > 0:
        return (
            f"the next try would wait {wait:.1f} s (the image host asks {asked:g} s, "
            f"Retry-After), past the {max(left, 0.0):.1f} s left of the {total}; not waited for"
        )
    return f"the download took longer than its {total}; a host this slow is not waited for"


def lifetime_text(seconds: float) -> str:
    """Say a links' lifetime: in hours when it is whole hours, else in seconds.

    >>> lifetime_text(86400.0), lifetime_text(3600.0), lifetime_text(90.0)
    ('24 hours', '1 hour', '90 s')
    """
    hours = seconds / 3600
    if hours >= 1 and hours.is_integer():
        return f"{int(hours)} hour{'s' if hours > 1 else ''}"
    return f"{seconds:g} s"


class Grace(Retryable):
    """A 403 or 404 right after completion: asked again without using up an attempt."""


def earlier_expiry(expires_at: float | None, stated_expiry: float | None) -> float | None:
    """Return the known expiry: the links' lifetime's end, or an earlier believed stated one."""
    if stated_expiry is None or (expires_at is not None and expires_at <= stated_expiry):
        return expires_at
    return stated_expiry


def malformed(framing: ImageFraming, where: Where) -> ImageDownloadError:
    if framing.problem is not None:
        return where.fail(f"the body is not a well-formed image: {framing.problem}")
    return where.fail(
        f"the body goes on after the image's end (byte {framing.end}, by its own framing); "
        "bytes after an image are not part of it"
    )

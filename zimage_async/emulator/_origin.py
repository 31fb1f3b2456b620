"""The image origin (the "CDN"): serves task images by signed, expiring link.

Route: ``GET /files/{task_id}/{index}.{ext}?expires={unix}&sig={hex}`` on its own listener.
Answers: 200 with the bytes (``Content-Type`` image/png, image/jpeg or image/webp,
``Content-Length``, a strong ``ETag``, ``Accept-Ranges: bytes``); 206 for a single
``Range`` (``bytes=N-``, ``bytes=N-M`` or ``bytes=-N``), unless an ``If-Range`` is not the
file's ETag (a weak tag, another tag, a date: it sends no ``Last-Modified``), which gets
the whole file with 200 as RFC 9110 says; 416 for a range past the end; 403 with an
XML ``AccessDenied`` body for a missing or wrong signature or an expired link (never stale
bytes); 404 with an XML ``NoSuchKey`` body for an unknown task, index or file. It never
looks at ``Authorization``.

Options seen in the gateway family's file hosts: ``image_framing`` sends bodies without
``Content-Length`` (``"chunked"``, or ``"close"``: the body ends when the connection
closes), and ``block_script_user_agents`` answers a Cloudflare-style 403 (error 1010, an
HTML page) before anything else to a request whose ``User-Agent`` is missing or mentions
``python``, ``aiohttp``, ``requests`` or ``curl``, unless it starts with
``zimage-async/<version>``.
"""

from __future__ import annotations

import re
from typing import Literal

from aiohttp import web

from ._clock import Clock
from ._faults import FaultRule
from ._framing import BodyFraming, framed_reply
from ._http import abort_connection, send_raw
from ._images import CONTENT_TYPES, ImageCache, ImageSpec
from ._injection import FaultInjector, error_reply
from ._links import FILE_EXTENSIONS, LinkSigner, file_path
from ._proxy_pages import script_blocked_page, user_agent_is_blocked
from ._tasks import TaskRecord, TaskStatus, TaskStore

__all__ = ["ImageFraming", "OriginHandlers", "origin_error_renderer"]

ImageFraming = Literal["length", "chunked", "close"]
"""How the origin delimits image bodies: ``Content-Length`` (default), chunked, or close."""
_GARBAGE = b"\x00<!-- trailing bytes after the image -->\n"

_FILE_NAME = re.compile(r"([0-9]{1,4})\.([a-z]{3,4})")
_RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")  # longer: not a range, ignored
_REDIRECTED = "redirected"


def _xml_error(status: int, code: str, message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>\n"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


def origin_error_renderer(request: web.Request, status: int, reason: str) -> web.Response:
    """Render router-level errors of the origin as small XML bodies, like a CDN."""
    if status == 404:
        return _xml_error(404, "NoSuchKey", "The specified key does not exist.")
    if status == 405:
        return _xml_error(405, "MethodNotAllowed", "The method is not allowed.")
    return _xml_error(status, "InternalError", reason)


def _parse_range(header: str, length: int) -> tuple[int, int] | str | None:
    """Return (start, end inclusive), None to ignore the header, or "unsatisfiable"."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        suffix = int(last)
        if suffix == 0 or length == 0:
            return "unsatisfiable"
        return max(0, length - suffix), length - 1
    start = int(first)
    end = length - 1 if not last else min(int(last), length - 1)
    if last and int(last) < start:
        return None
    if start >= length:
        return "unsatisfiable"
    return start, end


class OriginHandlers:
    """Serves the images of completed tasks."""

    def __init__(
        self,
        *,
        store: TaskStore,
        signer: LinkSigner,
        images: ImageCache,
        faults: FaultInjector,
        clock: Clock,
        renderer: str,
        padding_bytes: int,
        framing: ImageFraming = "length",
        block_script_user_agents: bool = False,
    ) -> None:
        self._store = store
        self._signer = signer
        self._images = images
        self._faults = faults
        self._clock = clock
        self._renderer = renderer
        self._padding = padding_bytes
        self._framing = framing
        self._block_scripts = block_script_user_agents

    def routes(self) -> list[web.RouteDef]:
        """Return the route table."""
        return [web.get("/files/{task_id}/{name}", self.serve_file, name="image")]

    def spec(self, record: TaskRecord, index: int) -> ImageSpec:
        """Return what determines the bytes of image *index* of *record*."""
        return ImageSpec(
            prompt=record.prompt if index == 0 else f"{record.prompt}\n#{index}",
            seed=record.seed,
            width_pixels=record.width_pixels,
            height_pixels=record.height_pixels,
            image_format=record.image_format,  # type: ignore[arg-type]
            padding_bytes=self._padding,
            renderer="pillow" if self._renderer == "pillow" else "plain",
        )

    async def drain(self) -> None:
        """Wait for image renders still running (used on shutdown)."""
        await self._images.drain()

    async def image_bytes(self, record: TaskRecord, index: int) -> bytes:
        """Return the bytes of image *index* of *record*."""
        return await self._images.get(self.spec(record, index))

    def _check_link(self, request: web.Request, path: str) -> web.Response | None:
        try:
            expires = int(request.query.get("expires", ""))
        except ValueError:
            return _xml_error(403, "AccessDenied", "Request is missing a valid expiry.")
        if not self._signer.is_valid(path, expires, request.query.get("sig", "")):
            return _xml_error(403, "SignatureDoesNotMatch", "The request signature is invalid.")
        if self._clock.now() >= expires:
            return _xml_error(403, "AccessDenied", "Request has expired")
        return None

    async def serve_file(self, request: web.Request) -> web.StreamResponse:
        """Handle ``GET /files/{task_id}/{index}.{ext}``."""
        if self._block_scripts and user_agent_is_blocked(request.headers.get("User-Agent")):
            return web.Response(
                status=403,
                text=script_blocked_page(),
                content_type="text/html",
                headers={"Server": "cloudflare", "CF-RAY": "8f1e2d3c4b5a6979-FRA"},
            )
        match = _FILE_NAME.fullmatch(request.match_info["name"])
        record = self._store.get(request.match_info["task_id"])
        if match is None or record is None:
            return _xml_error(404, "NoSuchKey", "The specified key does not exist.")
        index, extension = int(match.group(1)), match.group(2)
        if index >= record.image_count or extension != FILE_EXTENSIONS[record.image_format]:
            return _xml_error(404, "NoSuchKey", "The specified key does not exist.")
        denied = self._check_link(request, file_path(record.task_id, index, extension))
        if denied is not None:
            return denied
        if record.status_at(self._clock.now()) is not TaskStatus.COMPLETED:
            return _xml_error(404, "NoSuchKey", "The specified key does not exist.")
        rule = None if _REDIRECTED in request.query else self._faults.draw("image")
        if rule is not None and rule.kind == "slow":
            if not await self._faults.wait(rule):
                return abort_connection(request)
            rule = None
        if rule is not None and (
            rule.kind in ("reset", "redirect", "html_5xx") or rule.kind.startswith("http_")
        ):
            return self._fault_reply(request, rule)
        data = await self.image_bytes(record, index)
        if rule is not None and rule.kind == "trailing_garbage":
            data += (_GARBAGE * (rule.garbage_bytes // len(_GARBAGE) + 1))[: rule.garbage_bytes]
            rule = None
        return await self._send(request, record, data, fault=rule)

    def _fault_reply(self, request: web.Request, rule: FaultRule) -> web.StreamResponse:
        if rule.kind == "reset":
            return abort_connection(request)
        if rule.kind == "redirect":
            url = request.url.update_query({_REDIRECTED: "1"})
            if rule.redirect_host is not None:
                url = url.with_host(rule.redirect_host)
            return web.Response(status=302, headers={"Location": str(url)})
        reply = error_reply(rule)
        assert reply is not None, rule.kind
        return reply

    async def _send(
        self, request: web.Request, record: TaskRecord, data: bytes, *, fault: FaultRule | None
    ) -> web.StreamResponse:
        etag = f'"{record.task_id}-{len(data)}"'  # strong: one file, one byte sequence
        headers = {
            "Content-Type": CONTENT_TYPES[record.image_format],
            "Accept-Ranges": "bytes",
            "ETag": etag,
            "Cache-Control": "private, max-age=86400",
        }
        status, payload = 200, data
        requested = request.headers.get("Range")
        if requested is not None and request.headers.get("If-Range", etag) == etag:
            span = _parse_range(requested, len(data))
            if span == "unsatisfiable":
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            if isinstance(span, tuple):
                start, end = span
                status, payload = 206, data[start : end + 1]
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        if fault is not None and fault.kind == "truncate_close" and request.method == "GET":
            return self._send_unframed(
                request, status, headers, payload, fault.body_framing, fault.truncate_fraction
            )
        if fault is None and self._framing != "length" and request.method == "GET":
            return self._send_unframed(request, status, headers, payload, self._framing, None)
        if fault is None or fault.kind != "truncate":
            return web.Response(status=status, body=payload, headers=headers)
        truncate = fault
        headers["Content-Length"] = str(len(payload))
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        await response.write(payload[: int(len(payload) * truncate.truncate_fraction)])
        abort_connection(request)
        return response

    def _send_unframed(
        self,
        request: web.Request,
        status: int,
        headers: dict[str, str],
        payload: bytes,
        framing: BodyFraming,
        fraction: float | None,
    ) -> web.StreamResponse:
        cut_at = None if fraction is None else int(len(payload) * fraction)
        data = framed_reply(
            status=status, headers=headers, payload=payload, framing=framing, cut_at=cut_at
        )
        return send_raw(request, data, status=status)

"""The emulator's listeners: one aiohttp application on one loopback port each.

The emulator binds loopback addresses only (:func:`check_host`), and every application
runs behind the same middleware, which logs each request and turns crashes into 500s.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from aiohttp import web

from ._http import ErrorRenderer, middleware
from ._numbers import shown
from ._records import RequestLog
from ._validation import MAX_BODY_BYTES

__all__ = ["Listener", "check_host", "listener_app", "url_host"]

_SHUTDOWN_TIMEOUT_SECONDS = 1.0


def check_host(host: str) -> str:
    """Return *host* if it is a loopback address; raise ValueError otherwise."""
    try:  # a string only: ip_address() would also take an int or packed bytes
        address = ipaddress.ip_address(host) if isinstance(host, str) else None
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"host must be a loopback address (127.0.0.0/8 or ::1), got {shown(host)}; "
            "the emulator never listens on other interfaces."
        )
    return host


def url_host(host: str) -> str:
    """Return *host* as written in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def _classify(request: web.Request) -> str:
    route = request.match_info.route
    name = route.name if route is not None else None
    return name if name in ("create", "task", "image") else "other"


class Listener:
    """One aiohttp application on one loopback port."""

    def __init__(self, app: web.Application) -> None:
        self._runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_SECONDS,
            handle_signals=False,
        )
        self.port: int | None = None

    async def start(self, host: str, port: int) -> None:
        """Bind *host*:*port* (0 picks a free port) and start serving; sets :attr:`port`."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop serving and close the connections still open."""
        await self._runner.cleanup()


def listener_app(
    routes: list[web.RouteDef],
    renderer: ErrorRenderer,
    *,
    log: RequestLog,
    on_crash: Callable[[BaseException], None],
) -> web.Application:
    """Return the application serving *routes*, errors drawn by *renderer*."""
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            middleware(
                log=log,
                classify=_classify,
                render_error=renderer,
                on_crash=on_crash,
            )
        ],
    )
    app.add_routes(routes)
    return app

"""A proxy's password shows in no frame of a refused image download, nor in a repr.

Image downloads through an authenticated proxy (``HTTPS_PROXY=http://user:pw@host``):
a redirect the link policy refuses (a loop, an unreadable location, too many hops)
raises :class:`ImageLinkRefusedError` from the frame that followed the redirects, which
held the proxy's URL in a local variable for each hop. Error reporters (Sentry at its
defaults, a traceback with ``capture_locals``) send the frames' locals: the password
went with them. The proxy settings' repr showed it too.
"""

from __future__ import annotations

import traceback

import pytest
import trustme
from aiohttp import web

from zimage_async import ImageLinkRefusedError, RetryPolicy
from zimage_async._proxy import ProxyConfig

from ._proxies import TinyProxy, tls_server
from ._reports import CapturingTransport, raw_server, rendered, report
from .conftest import CompletedHost, loopback_session, serving

PROXY_PASSWORD = "proxy-pw-7e41c09b"
ONE_TRY = RetryPolicy(max_attempts=1)


async def _redirect(request: web.Request) -> web.Response:
    """``/loop/a`` <-> ``/loop/b``; ``/hop/N`` -> ``/hop/N+1``; ``/bad``: an unreadable place."""
    path = request.path
    if path == "/bad":
        location = "https://[::1/0.png"  # urljoin: "Invalid IPv6 URL"
    elif path.startswith("/loop/"):
        location = "/loop/b" if path.endswith("/a") else "/loop/a"
    else:
        location = f"/hop/{int(path.rsplit('/', 1)[1]) + 1}"
    return web.Response(status=302, headers={"Location": location})


def _chain(error: BaseException) -> list[BaseException]:
    """*error* and every exception it chains to, the suppressed contexts included."""
    found: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        exc = pending.pop()
        if exc is not None and all(exc is not other for other in found):
            found.append(exc)
            pending += [exc.__cause__, exc.__context__]
    return found


def _frames_holding(error: BaseException, secret: str) -> list[str]:
    """The frames of *error*'s whole chain whose locals' reprs show *secret*."""
    return [
        f"{frame.f_code.co_name}() local {name!r}"
        for exc in _chain(error)
        for frame, _ in traceback.walk_tb(exc.__traceback__)
        for name, value in frame.f_locals.items()
        if secret in repr(value)
    ]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/loop/a", "loop back"),
        ("/bad", "unreadable location"),
        ("/hop/0", "redirects"),
    ],
    ids=["redirect-loop", "unreadable-redirect", "too-many-redirects"],
)
async def test_a_refused_redirect_through_a_proxy_shows_not_its_password(
    sentry: CapturingTransport, ca: trustme.CA, ca_file: str, path: str, reason: str
) -> None:
    """The refusal's frames (and their chained causes') hold the proxy's URL nowhere."""
    async with tls_server(ca, "images.test", route=("/{tail:.*}", _redirect)) as image_port:
        proxy = TinyProxy({"images.test": "127.0.0.1"})
        async with raw_server(proxy) as proxy_url:
            proxy_port = proxy_url.rsplit(":", 1)[1]
            host = CompletedHost(_redirect)  # its own image route is never asked
            host.link = lambda task_id: f"https://images.test:{image_port}{path}?sig=abc"  # type: ignore[method-assign]
            async with serving(host.app) as host.base:
                env = {"HTTPS_PROXY": f"http://someone:{PROXY_PASSWORD}@127.0.0.1:{proxy_port}"}
                zs = loopback_session(host.base, retry=ONE_TRY, environ=env, ca_bundle=ca_file)
                del env
                async with zs:
                    with pytest.raises(ImageLinkRefusedError) as info:
                        await zs.task("task-unified-1-0").result(timeout=20)
    assert reason in info.value.reason
    assert proxy.seen and all(seen.startswith("CONNECT images.test:") for seen in proxy.seen)
    assert _frames_holding(info.value, PROXY_PASSWORD) == []
    for error in _chain(info.value):  # as reported, also an error whose context is dropped
        assert PROXY_PASSWORD not in f"{error} {error!r} {rendered(error)}"
        envelope = report(sentry, error)
        assert b'"vars"' in envelope  # the frames' locals were captured
        assert PROXY_PASSWORD.encode() not in envelope


@pytest.mark.parametrize(
    "url",
    [
        f"http://someone:{PROXY_PASSWORD}@proxy.example:3128",
        f"http://{PROXY_PASSWORD}@proxy.example:3128",  # a token as the user name
        f"proxy-user:{PROXY_PASSWORD}@proxy.example:3128",  # no scheme: http:// is assumed
    ],
    ids=["user-and-password", "token", "no-scheme"],
)
def test_the_proxy_settings_repr_masks_their_credentials(url: str) -> None:
    """The repr names each proxy by scheme, host and port, its user info masked."""
    config = ProxyConfig.from_environ(
        {"HTTPS_PROXY": url, "HTTP_PROXY": url, "NO_PROXY": ".internal"}
    )
    assert config.https is not None and PROXY_PASSWORD in config.https  # still usable
    shown = repr(config)
    assert PROXY_PASSWORD not in shown
    assert "someone" not in shown and "proxy-user" not in shown
    assert shown == (
        "ProxyConfig(https='http://***@proxy.example:3128', "
        "http='http://***@proxy.example:3128', no_proxy=('.internal',))"
    )
    bound = repr(config.proxy_for)  # a bound method's repr shows its object's
    assert PROXY_PASSWORD not in bound


def test_the_proxy_settings_repr_keeps_a_proxy_without_credentials_whole() -> None:
    """Nothing to mask: the URL is shown as it is."""
    config = ProxyConfig(https="http://proxy.example:3128")
    assert repr(config) == (
        "ProxyConfig(https='http://proxy.example:3128', http=None, no_proxy=())"
    )

"""Where images may be fetched from: the pure policy, proxies, and its enforcement on the wire.

Every packet goes to 127.0.0.0/8. Refused targets are refused before any connection, so
the tests that name them send nothing.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from zimage_async import ImageDownloadError, ImageExpiredError, RetryPolicy
from zimage_async._download import ByteBudget, DownloadInfo, ImageLimits, stream_image
from zimage_async._exceptions import ImageLinkRefusedError
from zimage_async._proxy import ProxyConfig
from zimage_async._transport import Transport
from zimage_async._urlpolicy import LinkPolicy

from .conftest import _png, serving
from .test_hardening_transport import MapResolver, opened, transport

STRICT = LinkPolicy.for_api("https://ai.odkkk.com/apiv1")
EMULATOR = LinkPolicy.for_api("http://127.0.0.1:8080/apiv1")
PRIVATE = LinkPolicy.for_api("https://10.1.2.3/apiv1")
FAST = RetryPolicy(wait_initial=0.01, wait_max=0.02, max_attempts=4)


# -- the pure policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        pytest.param("http://cdn.example/0.png", "plain http", id="http"),
        pytest.param("file:///etc/passwd", "scheme 'file'", id="file"),
        pytest.param("ftp://cdn.example/0.png", "scheme 'ftp'", id="ftp"),
        pytest.param("gopher://cdn.example/", "scheme 'gopher'", id="gopher"),
        pytest.param("https://user:pw@cdn.example/0.png", "user info", id="userinfo"),
        pytest.param("https://key@cdn.example/0.png", "user info", id="username-only"),
        pytest.param("https://cdn.example\\@127.0.0.1/", "backslashes", id="backslash"),
        pytest.param("https://127.0.0.1/0.png", "loopback", id="loopback"),
        pytest.param("https://localhost/0.png", "own name", id="localhost"),
        pytest.param("https://10.0.0.7/0.png", "private", id="private"),
        pytest.param("https://169.254.169.254/latest/meta-data/", "link-local", id="metadata"),
        pytest.param("https://[fd00::1]/0.png", "unique-local", id="ula"),
        pytest.param("https://[::ffff:127.0.0.1]/0.png", "loopback", id="mapped-loopback"),
        pytest.param("https://2130706433/0.png", "loopback", id="decimal-ip"),
        pytest.param("https://metadata.google.internal/", "'.internal'", id="internal-name"),
        pytest.param("https:///0.png", "no host", id="no-host"),
        pytest.param("https://cdn.example:99999/0.png", "not a valid URL", id="bad-port"),
    ],
)
def test_strict_policy_refuses(url: str, phrase: str) -> None:
    """For a public API, non-https, credentials and internal targets are refused."""
    refusal = STRICT.refusal(url)
    assert refusal is not None and phrase in refusal


def test_strict_policy_accepts_a_public_https_link() -> None:
    """A public https link with a signed query string is accepted."""
    assert STRICT.refusal("https://files.example.com/t/0.png?X-Amz-Signature=ab") is None


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:9000/img/0.png", id="loopback-http"),
        pytest.param("http://localhost:9000/img/0.png", id="localhost"),
        pytest.param("https://[::1]/0.png", id="ipv6-loopback"),
    ],
)
def test_loopback_api_allows_loopback_images(url: str) -> None:
    """With the API on loopback (the emulator), loopback images over http are fine."""
    assert EMULATOR.refusal(url) is None


@pytest.mark.parametrize(
    ("policy", "url"),
    [
        pytest.param(EMULATOR, "http://169.254.169.254/latest/", id="emulator-metadata"),
        pytest.param(EMULATOR, "http://10.0.0.7/0.png", id="emulator-private"),
        pytest.param(EMULATOR, "file:///etc/passwd", id="emulator-file"),
        pytest.param(PRIVATE, "https://169.254.169.254/", id="private-metadata"),
        pytest.param(PRIVATE, "https://127.0.0.1/0.png", id="private-loopback"),
        pytest.param(PRIVATE, "http://10.0.0.7/0.png", id="private-http"),
    ],
)
def test_internal_api_allows_only_its_own_kind(policy: LinkPolicy, url: str) -> None:
    """An internal API widens the policy to its own kind of address only, never link-local."""
    assert policy.refusal(url) is not None


def test_private_api_allows_private_images() -> None:
    """With the API on a private network, private-network https images are fine."""
    assert PRIVATE.refusal("https://10.0.0.7/0.png") is None


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        pytest.param("93.184.216.34", False, id="public-v4"),
        pytest.param("2606:2800:220:1::1", False, id="public-v6"),
        pytest.param("127.0.0.1", True, id="loopback"),
        pytest.param("10.0.0.1", True, id="private"),
        pytest.param("169.254.169.254", True, id="metadata"),
        pytest.param("fd00::1", True, id="ula"),
        pytest.param("fe80::1", True, id="link-local-v6"),
        pytest.param("::ffff:192.168.0.1", True, id="mapped-private"),
    ],
)
def test_resolved_addresses_are_checked(address: str, refused: bool) -> None:
    """Each resolved address of an image host is refused when internal."""
    assert (STRICT.address_refusal(address) is not None) is refused


def test_policy_without_an_api_is_strict() -> None:
    """With no API URL known, the strictest policy applies."""
    assert LinkPolicy.for_api(None) == STRICT


# -- proxies from the environment ----------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "url", "proxy"),
    [
        pytest.param({"HTTPS_PROXY": "http://p:3128"}, "https://a.example/", "http://p:3128"),
        pytest.param({"https_proxy": "p:3128"}, "https://a.example/", "http://p:3128"),
        pytest.param({"HTTP_PROXY": "http://p:1"}, "https://a.example/", None, id="http-only"),
        pytest.param({"HTTP_PROXY": "http://p:1"}, "http://a.example/", "http://p:1"),
        pytest.param({"ALL_PROXY": "http://p:2"}, "https://a.example/", "http://p:2"),
        pytest.param(
            {"HTTPS_PROXY": "http://p:3128", "https_proxy": "http://q:3128"},
            "https://a.example/",
            "http://q:3128",
            id="lower-case-wins",
        ),
        pytest.param(
            {"HTTP_PROXY": "http://evil:1", "REQUEST_METHOD": "GET"},
            "http://a.example/",
            None,
            id="httpoxy",
        ),
        pytest.param({"HTTPS_PROXY": "http://p:1"}, "https://127.0.0.1/", None, id="loopback"),
        pytest.param({"HTTPS_PROXY": "http://p:1"}, "https://localhost/", None, id="localhost"),
        pytest.param({"HTTPS_PROXY": "http://p:1"}, "https://[::1]/", None, id="ipv6-loopback"),
        pytest.param(
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"},
            "https://cdn.example.com/",
            None,
            id="no-proxy-suffix",
        ),
        pytest.param(
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".example.com"},
            "https://example.com/",
            None,
            id="no-proxy-dot",
        ),
        pytest.param(
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"},
            "https://badexample.com/",
            "http://p:1",
            id="no-proxy-not-a-suffix",
        ),
        pytest.param(
            {"HTTPS_PROXY": "http://p:1", "no_proxy": "10.0.0.0/8"},
            "https://10.1.2.3/",
            None,
            id="no-proxy-cidr",
        ),
        pytest.param(
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "a.example:8443"},
            "https://a.example/",
            "http://p:1",
            id="no-proxy-other-port",
        ),
        pytest.param({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https://a.example/", None),
        pytest.param({"HTTPS_PROXY": "socks5://p:1"}, "https://a.example/", None, id="socks"),
    ],
)
def test_proxy_choice(environ: dict[str, str], url: str, proxy: str | None) -> None:
    """The proxy for a URL follows the environment's variables, as curl reads them."""
    assert ProxyConfig.from_environ(environ).proxy_for(url) == proxy


# -- enforcement on the wire ----------------------------------------------------------------


class ImageHost:
    """A loopback image host whose routes redirect in chosen ways, counting hits."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.fresh_misses = 0
        self.base = ""
        self.app = web.Application()
        self.app.router.add_get("/{kind}", self.serve)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        self.hits[kind] = self.hits.get(kind, 0) + 1
        targets = {
            "to-file": "file:///etc/passwd",
            "to-metadata": "http://169.254.169.254/latest/meta-data/",
            "to-userinfo": f"{self.base.replace('://', '://user:pw@')}/ok",
            "loop-a": f"{self.base}/loop-b",
            "loop-b": f"{self.base}/loop-a",
            "relative": "ok",
        }
        if kind in targets:
            raise web.HTTPFound(targets[kind])
        if kind.startswith("chain"):
            raise web.HTTPFound(f"{self.base}/chain{int(kind[5:]) + 1}")
        if kind == "late" and self.hits[kind] <= 2:
            return web.Response(status=404, text="not yet")
        if kind == "gone":
            return web.Response(status=404, text="gone")
        return web.Response(body=_png(), content_type="image/png")


@pytest.fixture
async def image_host() -> AsyncIterator[ImageHost]:
    host = ImageHost()
    async with serving(host.app) as host.base:
        yield host


async def fetch(
    t: Transport,
    url: str,
    *,
    limits: ImageLimits | None = None,
    budget: ByteBudget | None = None,
    completed_at: float | None = None,
) -> bytes:
    parts = [
        chunk
        async for chunk in stream_image(
            t,
            url,
            task_id="task-unified-1-abcdefgh",
            index=0,
            expires_at=None,
            retry=FAST,
            rng=random.Random(0),
            limits=limits or ImageLimits(),
            info=DownloadInfo(),
            budget=budget,
            completed_at=completed_at,
        )
    ]
    return b"".join(parts)


@contextlib.asynccontextmanager
async def emulator_transport(host: ImageHost) -> AsyncIterator[Transport]:
    async with opened(transport(api_base_url=f"{host.base}/apiv1")) as t:
        yield t


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [
        pytest.param("to-file", "scheme 'file'", id="file"),
        pytest.param("to-metadata", "link-local", id="metadata"),
        pytest.param("to-userinfo", "user info", id="userinfo"),
        pytest.param("loop-a", "loop", id="loop"),
        pytest.param("chain0", "more than 5 redirects", id="too-many"),
    ],
)
async def test_refused_redirects_are_not_followed_nor_retried(
    image_host: ImageHost, kind: str, phrase: str
) -> None:
    """A redirect hop the policy refuses ends the download at once, without retries."""
    async with emulator_transport(image_host) as t:
        with pytest.raises(ImageLinkRefusedError) as info:
            await fetch(t, f"{image_host.base}/{kind}")
    assert phrase in str(info.value)
    assert image_host.hits[kind] == 1  # asked once: a refusal is not retried
    assert "ok" not in image_host.hits


async def test_relative_redirect_within_policy_is_followed(image_host: ImageHost) -> None:
    """A relative redirect to an allowed place is followed to the image."""
    async with emulator_transport(image_host) as t:
        data = await fetch(t, f"{image_host.base}/relative")
    assert data == _png()


async def test_name_resolving_to_an_internal_address_is_refused_before_connecting(
    image_host: ImageHost,
) -> None:
    """A public-looking image host that resolves to loopback is refused by the resolver."""
    port = image_host.base.rpartition(":")[2]
    resolver = MapResolver({"images.example.com": "127.0.0.1"})
    async with opened(
        transport(api_base_url="https://api.example.com/apiv1", resolver=resolver)
    ) as t:
        with pytest.raises(ImageLinkRefusedError) as info:
            await fetch(t, f"https://images.example.com:{port}/ok")
    assert "loopback" in str(info.value)
    assert resolver.asked == ["images.example.com"]
    assert image_host.hits == {}  # no connection was made


async def test_link_with_credentials_is_refused_before_connecting(image_host: ImageHost) -> None:
    """A link with user info is refused without a request, so no Basic auth is sent."""
    async with emulator_transport(image_host) as t:
        with pytest.raises(ImageLinkRefusedError):
            await fetch(t, image_host.base.replace("://", "://user:pw@") + "/ok")
    assert image_host.hits == {}


async def test_fresh_link_404_gets_a_grace(image_host: ImageHost) -> None:
    """A 404 right after completion is asked again until the CDN has the file."""
    async with emulator_transport(image_host) as t:
        data = await fetch(t, f"{image_host.base}/late", completed_at=time.time())
    assert data == _png()
    assert image_host.hits["late"] == 3


async def test_old_link_404_is_expiry_at_once(image_host: ImageHost) -> None:
    """A 404 long after completion is expiry, asked once."""
    async with emulator_transport(image_host) as t:
        with pytest.raises(ImageExpiredError):
            await fetch(t, f"{image_host.base}/gone", completed_at=time.time() - 3600)
    assert image_host.hits["gone"] == 1


async def test_fresh_link_grace_is_bounded(image_host: ImageHost) -> None:
    """A link that stays 404 right after completion is expiry after the grace's retries."""
    async with emulator_transport(image_host) as t:
        with pytest.raises(ImageExpiredError):
            await fetch(t, f"{image_host.base}/gone", completed_at=time.time())
    assert image_host.hits["gone"] == 3


async def test_task_budget_bounds_the_images_together(image_host: ImageHost) -> None:
    """Images sharing a task's byte budget fail once together they pass its limit."""
    size = len(_png())
    budget = ImageLimits(max_task_bytes=size + size // 2).budget()
    async with emulator_transport(image_host) as t:
        await fetch(t, f"{image_host.base}/ok", budget=budget)
        with pytest.raises(ImageDownloadError) as info:
            await fetch(t, f"{image_host.base}/ok", budget=budget)
    assert "max_task_bytes" in str(info.value)
    assert image_host.hits["ok"] == 2  # over budget is final, not retried

"""Which proxy a request goes through, read from the environment. Pure.

``HTTPS_PROXY`` / ``https_proxy`` for ``https`` URLs, ``HTTP_PROXY`` / ``http_proxy``
for ``http`` ones (``ALL_PROXY`` for both when those are unset), ``NO_PROXY`` /
``no_proxy`` for exceptions, as curl and the standard library read them: the
lower-case name wins, and ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set
(a CGI process, where a request header could set it: "httpoxy"). Loopback hosts are
never proxied. Only ``http://`` proxies are supported (the CONNECT method carries
``https`` through them); a proxy URL of another scheme is ignored with a warning.
Nothing is read from ``.netrc``: proxy credentials, if any, come from the proxy URL,
and a :class:`ProxyConfig`'s repr masks them (error reporters show the reprs of a
traceback's locals).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import urllib.parse
from collections.abc import Mapping

import attrs

from ._exceptions import InvalidRequestError
from ._urlpolicy import is_loopback_host

__all__ = ["ProxyConfig"]

logger = logging.getLogger("zimage_async")

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _read(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name.lower())
    if value is None:
        value = environ.get(name.upper(), "")
    return value.strip()


def _proxy_url(value: str, name: str) -> str | None:
    if not value:
        return None
    if "://" not in value:
        value = f"http://{value}"
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - a ValueError when it is not a port
    except ValueError:  # a bracket left open, say: not its value (it may hold a password)
        raise InvalidRequestError(
            name, "a proxy URL such as http://proxy.example:3128", "it cannot be read as a URL"
        ) from None
    if parts.scheme.lower() != "http" or not parts.hostname:
        logger.warning(
            "ignoring %s: only http:// proxies are supported (got a %r URL)", name, parts.scheme
        )
        return None
    return value


def _shown(url: str | None) -> str:
    """Return the repr of a proxy *url* with its user info (the credentials) masked.

    Everything from the scheme up to the last ``@`` is user info: a password may hold
    ``/``, ``?``, ``#`` or ``@`` unescaped, and a proxy URL has no path worth showing.

    >>> _shown("http://someone:p/w@proxy.example:3128"), _shown("pw@proxy:80"), _shown(None)
    ("'http://***@proxy.example:3128'", "'***@proxy:80'", 'None')
    """
    if url is None:
        return "None"
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    at = url.rfind("@")
    if at >= start:
        url = f"{url[:start]}***{url[at:]}"
    return repr(url)


@attrs.frozen(kw_only=True)
class ProxyConfig:
    """The proxies to use, by URL scheme, and the hosts that bypass them.

    >>> config = ProxyConfig.from_environ(
    ...     {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": ".internal.example,10.0.0.0/8"}
    ... )
    >>> config.proxy_for("https://ai.odkkk.com/apiv1")
    'http://proxy:3128'
    >>> config.proxy_for("https://files.internal.example/0.png") is None
    True
    >>> config.proxy_for("https://127.0.0.1:8080/") is None
    True

    The repr masks the credentials a proxy URL holds:

    >>> ProxyConfig(https="http://someone:pw@proxy:3128")
    ProxyConfig(https='http://***@proxy:3128', http=None, no_proxy=())
    """

    https: str | None = attrs.field(default=None, repr=_shown)
    http: str | None = attrs.field(default=None, repr=_shown)
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ProxyConfig:
        """Read the proxy variables from *environ* (usually ``os.environ``)."""
        everything = _read(environ, "all_proxy")
        https = _read(environ, "https_proxy") or everything
        if "REQUEST_METHOD" in environ:
            http = environ.get("http_proxy", "").strip() or everything
        else:
            http = _read(environ, "http_proxy") or everything
        no_proxy = tuple(
            entry.strip().lower()
            for entry in _read(environ, "no_proxy").split(",")
            if entry.strip()
        )
        return cls(
            https=_proxy_url(https, "ALL_PROXY" if https is everything else "HTTPS_PROXY"),
            http=_proxy_url(http, "ALL_PROXY" if http is everything else "HTTP_PROXY"),
            no_proxy=no_proxy,
        )

    def proxy_for(self, url: str) -> str | None:
        """Return the proxy URL for a request to *url*, or ``None`` to connect directly."""
        parts = urllib.parse.urlsplit(url)
        proxy = self.https if parts.scheme.lower() == "https" else self.http
        if proxy is None or is_loopback_host(parts.hostname):
            return None
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        return None if self._bypassed(parts.hostname or "", port) else proxy

    def _bypassed(self, host: str, port: int) -> bool:
        host = host.lower().rstrip(".")
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
                host
            )
        except ValueError:
            address = None
        for entry in self.no_proxy:
            if entry == "*":
                return True
            name, _, entry_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
            if entry_port and str(port) != entry_port:
                continue
            name = name.strip("[]").lstrip("*").rstrip(".")
            if address is not None:
                try:
                    if address in ipaddress.ip_network(name, strict=False):
                        return True
                except ValueError:
                    pass
                continue
            name = name.lstrip(".")
            if name and (host == name or host.endswith("." + name)):
                return True
        return False


def _has_port(entry: str) -> bool:
    """Whether a ``NO_PROXY`` entry ends in ``:port`` (not an IPv6 address's last group)."""
    if entry.startswith("["):
        return "]:" in entry
    return entry.count(":") == 1

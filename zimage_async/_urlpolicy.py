"""Where image links may be fetched from: a pure policy over URLs and resolved addresses.

An image link comes from the service's answer, not from the user, and redirects come
from whatever host the link names: neither may steer this process into its own network.
:class:`LinkPolicy` decides, without any I/O:

* :meth:`LinkPolicy.refusal` for a URL (the link, and every redirect hop): ``https``
  only (plain ``http`` only while the API itself is on loopback, as for the emulator),
  no user info (credentials are never sent as Basic auth), a host that is not internal;
* :meth:`LinkPolicy.address_refusal` for each address a host name resolves to, checked
  by the transport's resolver just before it connects, so a public name that resolves
  to an internal address is refused too.

Internal targets are refused unless the API is on one: loopback images are fine while
the API is on loopback (the emulator), private-network images while the API is on a
private network. Link-local addresses (``169.254.0.0/16``, where cloud metadata
services live, and ``fe80::/10``) are refused always.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import urllib.parse

import attrs

from ._addresses import internal_host_reason

__all__ = ["LinkPolicy", "is_loopback_host", "next_hop"]

#: Redirect hops followed for one image request.
MAX_REDIRECTS = 5

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})
_ALWAYS_REFUSED = ("link-local", "unspecified", "multicast", "metadata")
# Characters that parsers disagree on (WHATWG treats "\" as "/"; others keep it), besides
# the control characters that isprintable() refuses. Searched for with a regular
# expression: a set's isdisjoint() looks each character of a long signed link up in turn.
_AMBIGUOUS = re.compile(r"[\\ ]")


def is_loopback_host(host: str | None) -> bool:
    """Whether *host* (a URL's host, brackets allowed) is a loopback address or name.

    >>> is_loopback_host("127.0.0.2"), is_loopback_host("[::1]"), is_loopback_host("localhost")
    (True, True, True)
    >>> is_loopback_host("example.com")
    False
    """
    if not host:
        return False
    text = host.strip().strip("[]").lower()
    if text in _LOOPBACK_NAMES or text.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(text.partition("%")[0]).is_loopback
    except ValueError:
        return False


def next_hop(current: str, location: str) -> str:
    """Return the absolute URL a redirect's ``Location`` points to from *current*.

    >>> next_hop("https://cdn.example/a/b.png", "../c.png")
    'https://cdn.example/c.png'
    """
    return urllib.parse.urljoin(current, location.strip())


@attrs.frozen(kw_only=True)
class LinkPolicy:
    """Which image URLs and addresses may be fetched; see the module docstring.

    Build it with :meth:`for_api` from the API's base URL.
    """

    #: Plain ``http`` links are accepted (only while the API is on loopback).
    allow_http: bool = False
    #: Loopback targets are accepted (only while the API is on loopback).
    allow_loopback: bool = False
    #: Private-network targets are accepted (only while the API is on one).
    allow_private: bool = False
    #: Redirect hops followed for one image.
    max_redirects: int = MAX_REDIRECTS

    @classmethod
    def for_api(cls, base_url: str | None) -> LinkPolicy:
        """Return the policy for images of the API at *base_url* (strict when ``None``).

        >>> LinkPolicy.for_api("http://127.0.0.1:8080/apiv1").allow_loopback
        True
        >>> LinkPolicy.for_api("https://ai.odkkk.com/apiv1") == LinkPolicy()
        True
        """
        if not base_url:
            return cls()
        host = urllib.parse.urlsplit(base_url).hostname
        if is_loopback_host(host):
            return cls(allow_http=True, allow_loopback=True)
        if host and internal_host_reason(host) is not None:
            return cls(allow_private=True)
        return cls()

    def refusal(self, url: str) -> str | None:
        """Say why *url* may not be fetched, or return ``None`` if it may.

        >>> LinkPolicy().refusal("https://cdn.example/0.png") is None
        True
        >>> LinkPolicy().refusal("file:///etc/passwd")
        "the scheme 'file' is not https"
        >>> LinkPolicy().refusal("https://169.254.169.254/latest/meta-data")
        'its host is a link-local address (169.254.0.0/16)'
        """
        if not url.isprintable() or _AMBIGUOUS.search(url):
            return "it contains spaces, backslashes or control characters"
        origin = _ORIGIN.match(url)
        if origin is not None:  # scheme "://" authority: what urlsplit would read
            scheme, netloc = origin[1], origin[2]
        else:
            try:
                parts = urllib.parse.urlsplit(url)
            except ValueError:
                return _INVALID
            scheme, netloc = parts.scheme, parts.netloc
        # Positional: the cache's key is made faster than with keywords.
        return _origin_refusal(
            scheme, netloc, self.allow_http, self.allow_loopback, self.allow_private
        )

    def address_refusal(self, address: str) -> str | None:
        """Say why connecting to the resolved IP *address* is refused, or ``None``.

        >>> LinkPolicy().address_refusal("10.0.0.7")
        'it resolves to a private address (10.0.0.0/8)'
        >>> LinkPolicy(allow_loopback=True).address_refusal("127.0.0.1") is None
        True
        """
        reason = self._host_refusal(address)
        return None if reason is None else reason.replace("its host is", "it resolves to", 1)

    def _host_refusal(self, host: str) -> str | None:
        return _host_refusal(host, allow_loopback=self.allow_loopback, private=self.allow_private)


_INVALID = "it is not a valid URL (bad port or host)"
#: A URL's scheme and authority, as urlsplit reads them from a URL without spaces or
#: control characters (which the policy refuses before it looks for these).
_ORIGIN = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)")


@functools.lru_cache(maxsize=1024)  # pure, and asked for every image link: one origin for all
def _origin_refusal(
    scheme: str, netloc: str, allow_http: bool, allow_loopback: bool, private: bool
) -> str | None:
    """Judge a URL by its scheme and authority, all that the verdict depends on."""
    try:
        # The checks urlsplit makes of an authority (brackets, Unicode), then its port.
        parts = urllib.parse.urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return _INVALID
    scheme = scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_http):
        if scheme == "http":
            return "plain http is refused (https only, except for a loopback API)"
        return f"the scheme {scheme!r} is not https"
    if "@" in netloc:
        return "it carries user info (credentials are never sent to an image host)"
    host = parts.hostname
    if not host:
        return "it has no host"
    if port == 0:
        return "its port is 0"
    return _host_refusal(host, allow_loopback=allow_loopback, private=private)


@functools.lru_cache(maxsize=4096)  # pure, and asked for every image link and address
def _host_refusal(host: str, *, allow_loopback: bool, private: bool) -> str | None:
    reason = internal_host_reason(host)
    if reason is None:
        return None
    if any(word in reason for word in _ALWAYS_REFUSED):
        return f"its host is {reason}"
    if is_loopback_host(host) or "loopback" in reason or "own name" in reason:
        return None if allow_loopback else f"its host is {reason}"
    return None if private else f"its host is {reason}"

"""Tell whether a host name or address points inside a private network.

Pure code: no sockets, no DNS. :func:`internal_host_reason` reads a host the way the
permissive parsers do (URL parsers, ``inet_aton``, IDNA mapping), so that a spelling
such as ``0x7f.1``, ``2130706433``, ``[::ffff:7f00:1]`` or ``LOCALHOST.`` cannot smuggle
an internal address past it. It errs on the side of refusing: a host that no public
resolver could answer for (``metadata.internal``, a single-label name, a malformed
numeric address) is reported too.

What it cannot know: a public name that *resolves* to an internal address. Only the
party that resolves and connects can check that.
"""

from __future__ import annotations

import codecs
import functools
import ipaddress
import re
import unicodedata
from encodings import idna

__all__ = ["internal_host_reason", "parse_legacy_ipv4"]

_IPv4 = ipaddress.IPv4Network
_IPv6 = ipaddress.IPv6Network

# IPv4 special-purpose ranges (RFC 6890 and successors), most specific first where they nest.
_IPV4_RANGES: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_IPv4("0.0.0.0/8"), "an unspecified address (0.0.0.0/8)"),
    (_IPv4("10.0.0.0/8"), "a private address (10.0.0.0/8)"),
    (_IPv4("100.64.0.0/10"), "a shared carrier-grade NAT address (100.64.0.0/10)"),
    (_IPv4("127.0.0.0/8"), "a loopback address (127.0.0.0/8)"),
    (_IPv4("169.254.0.0/16"), "a link-local address (169.254.0.0/16)"),
    (_IPv4("172.16.0.0/12"), "a private address (172.16.0.0/12)"),
    (_IPv4("192.0.0.0/24"), "a reserved protocol-assignment address (192.0.0.0/24)"),
    (_IPv4("192.0.2.0/24"), "a documentation address (192.0.2.0/24)"),
    (_IPv4("192.168.0.0/16"), "a private address (192.168.0.0/16)"),
    (_IPv4("198.18.0.0/15"), "a benchmarking address (198.18.0.0/15)"),
    (_IPv4("198.51.100.0/24"), "a documentation address (198.51.100.0/24)"),
    (_IPv4("203.0.113.0/24"), "a documentation address (203.0.113.0/24)"),
    (_IPv4("224.0.0.0/4"), "a multicast address (224.0.0.0/4)"),
    (_IPv4("240.0.0.0/4"), "a reserved address (240.0.0.0/4)"),
)

# IPv6 ranges without an embedded IPv4 address, checked after the embedding forms.
_IPV6_RANGES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_IPv6("64:ff9b:1::/48"), "a local-use NAT64 address (64:ff9b:1::/48)"),
    (_IPv6("100::/64"), "a discard-only address (100::/64)"),
    (_IPv6("2001:db8::/32"), "a documentation address (2001:db8::/32)"),
    (_IPv6("3fff::/20"), "a documentation address (3fff::/20)"),
    (_IPv6("fc00::/7"), "a unique-local address (fc00::/7)"),
    (_IPv6("fe80::/10"), "a link-local address (fe80::/10)"),
    (_IPv6("fec0::/10"), "a site-local address (fec0::/10)"),
    (_IPv6("ff00::/8"), "a multicast address (ff00::/8)"),
)
_IPV6_GLOBAL_UNICAST = _IPv6("2000::/3")
_IPV6_COMPATIBLE = _IPv6("::/96")
_IPV6_TRANSLATED = _IPv6("::ffff:0:0:0/96")
_IPV6_NAT64 = _IPv6("64:ff9b::/96")

# Names that no public resolver answers for, but local resolvers may (RFC 6761, RFC 6762
# appendix G, RFC 8375, ICANN's .internal). Exact names, then suffixes.
_LOCAL_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})
_LOCAL_SUFFIXES = (
    "localhost",
    "localdomain",
    "local",
    "internal",
    "intranet",
    "private",
    "corp",
    "home",
    "lan",
    "home.arpa",
)

# Full stops that IDNA (UTS #46) maps to ".".
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
# One part of a legacy numeric IPv4 address, as inet_aton reads it.
_NUMERIC_PART = re.compile(r"0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*", re.ASCII | re.IGNORECASE)
# A label that URL parsers take for a number (WHATWG "ends in a number").
_NUMBER_LIKE = re.compile(r"[0-9]+|0x[0-9a-f]*", re.ASCII | re.IGNORECASE)


def parse_legacy_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """Parse an IPv4 address in any form that ``inet_aton`` accepts, or return ``None``.

    One to four dot-separated parts, each decimal, octal (leading ``0``) or hex (leading
    ``0x``); every part but the last is one byte, and the last part fills the bytes that
    remain. So ``127.1``, ``0x7f.1``, ``0177.0.0.1`` and ``2130706433`` all mean
    ``127.0.0.1``. One trailing dot is allowed, as URL parsers allow it.

    >>> parse_legacy_ipv4("0x7f.1")
    IPv4Address('127.0.0.1')
    >>> parse_legacy_ipv4("example.com") is None
    True
    """
    parts = text.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if not _NUMERIC_PART.fullmatch(part):
            return None
        if part[:2].lower() == "0x":
            values.append(int(part[2:] or "0", 16))
        elif part.startswith("0") and len(part) > 1:
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *leading, last = values
    if any(value > 0xFF for value in leading) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


@functools.lru_cache(maxsize=4096)  # pure, and asked for every image link and address
def internal_host_reason(host: str) -> str | None:
    """Say why *host* is an internal address, or return ``None`` for a public host.

    *host* is a host name or an IP address literal as it appears in a URL: brackets
    around IPv6 (``[::1]``), zone ids (``fe80::1%eth0``), upper case and trailing dots
    are all understood, and so are the legacy IPv4 spellings (``2130706433``,
    ``0x7f000001``, ``0177.0.0.1``, ``127.1``). Refused are loopback, private,
    shared (CGNAT), link-local, unique-local, multicast, documentation and other
    reserved ranges, IPv6 forms that embed such an IPv4 address (IPv4-mapped,
    IPv4-compatible, NAT64, 6to4, Teredo), ``localhost`` and names under it or under
    private-use suffixes (``.local``, ``.internal``...), single-label names (which
    resolve through local search domains), and hosts that look numeric but do not
    parse. The reason is a short noun phrase such as ``"a loopback address
    (127.0.0.0/8)"``.

    No DNS lookup is made, so a public name that resolves to an internal address is
    not caught here.

    >>> internal_host_reason("0x7f.1")
    'a loopback address (127.0.0.0/8)'
    >>> internal_host_reason("[::ffff:10.0.0.1]")
    'an IPv4-mapped IPv6 address of a private address (10.0.0.0/8)'
    >>> internal_host_reason("example.com") is None
    True
    """
    text = host.strip()
    bracketed = text.startswith("[") and text.endswith("]")
    if bracketed:
        text = text[1:-1]
    text = _fold(text)
    if bracketed or ":" in text:
        return _ipv6_reason(text.partition("%")[0])
    text = text.rstrip(".")
    if not text:
        return "an empty host name"
    labels = text.split(".")
    if all(_NUMBER_LIKE.fullmatch(label) for label in labels):
        address = parse_legacy_ipv4(text)
        if address is None:
            return "a malformed numeric IPv4 address"
        return _ipv4_reason(address)
    if _NUMBER_LIKE.fullmatch(labels[-1]):
        return "a name ending in a number, which URL parsers read as an IPv4 address"
    return _name_reason(labels)


def _fold(text: str) -> str:
    """Map *text* the way IDNA does: compatibility forms, case, ignorables, odd dots."""
    text = unicodedata.normalize("NFKC", text).translate(_DOTS)
    labels = []
    for label in text.split("."):
        try:
            folded = idna.nameprep(label) if label else label
        except UnicodeError:
            folded = "".join(
                char for char in label.casefold() if unicodedata.category(char) != "Cf"
            )
        labels.append(unicodedata.normalize("NFKC", folded))
    return ".".join(labels)


def _ipv4_reason(address: ipaddress.IPv4Address) -> str | None:
    for network, reason in _IPV4_RANGES:
        if address in network:
            return reason
    return None


def _embedded_reason(kind: str, embedded: ipaddress.IPv4Address) -> str | None:
    reason = _ipv4_reason(embedded)
    return None if reason is None else f"{kind} IPv6 address of {reason}"


def _ipv6_reason(text: str) -> str | None:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return "a malformed IPv6 address"
    packed = int(address)
    if packed == 0:
        return "an unspecified address (::)"
    if packed == 1:
        return "a loopback address (::1)"
    if address.ipv4_mapped is not None:
        return _embedded_reason("an IPv4-mapped", address.ipv4_mapped)
    low32 = ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    if address in _IPV6_TRANSLATED:
        return _embedded_reason("an IPv4-translated", low32) or "a reserved address (::/8)"
    if address in _IPV6_COMPATIBLE:
        return (
            _embedded_reason("an IPv4-compatible", low32)
            or "a deprecated IPv4-compatible IPv6 address (::/96)"
        )
    if address in _IPV6_NAT64:
        return _embedded_reason("a NAT64", low32)
    if address.sixtofour is not None:
        return _embedded_reason("a 6to4", address.sixtofour)
    if address.teredo is not None:
        server, client = address.teredo
        return _embedded_reason("a Teredo", client) or _embedded_reason("a Teredo", server)
    for network, reason in _IPV6_RANGES:
        if address in network:
            return reason
    if address not in _IPV6_GLOBAL_UNICAST:
        return "a reserved address (outside 2000::/3)"
    return None


def _name_reason(labels: list[str]) -> str | None:
    if any(not label for label in labels):
        return "a malformed host name (it has an empty label)"
    names = {".".join(labels)}
    decoded = [_punycode_decoded(label) for label in labels]
    names.add(".".join(decoded))
    for name in sorted(names):
        if name in _LOCAL_NAMES:
            return f"this machine's own name ({name})"
        for suffix in _LOCAL_SUFFIXES:
            if name == suffix or name.endswith("." + suffix):
                return f"a name under the private-use suffix '.{suffix}'"
    if len(labels) == 1:
        return "a single-label name, which resolves through local search domains"
    return None


def _punycode_decoded(label: str) -> str:
    """Decode an ``xn--`` label leniently, as a careless resolver might."""
    if not label.startswith("xn--"):
        return label
    try:
        return _fold(codecs.decode(label[4:].encode("ascii"), "punycode"))
    except (UnicodeError, ValueError):
        return label

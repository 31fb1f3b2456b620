"""Which callback hosts count as internal, the way the provider refuses them.

The provider refuses callback URLs that point at internal addresses (its page names
127.0.0.1, 10.x, 172.16-31.x and 192.168.x, "etc."). The emulator refuses, without any DNS
lookup: loopback, private, shared (CGNAT), link-local, unique-local, site-local,
multicast, reserved and unspecified addresses; IPv6 forms that embed such an IPv4 address
(IPv4-mapped, IPv4-compatible, NAT64, 6to4); the names ``localhost`` and ``*.localhost``;
and the legacy numeric IPv4 spellings ``inet_aton`` accepts (``2130706433``, ``0x7f.1``,
``0177.0.0.1``), which many HTTP stacks would happily connect to.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_internal_host", "is_loopback_host", "is_loopback_name", "parse_host_address"]

_IPv4_INTERNAL = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
_IPv6_INTERNAL = tuple(
    ipaddress.IPv6Network(net)
    for net in ("::/128", "::1/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8")
)
_IPv6_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPv6_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse_ipv4_part(part: str) -> int | None:
    """Parse one part of a legacy dotted IPv4 form: decimal, 0-octal or 0x-hex."""
    if not part:
        return None
    try:
        if part[:2].lower() == "0x":
            return int(part[2:], 16) if part[2:] else 0
        if len(part) > 1 and part[0] == "0":
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def _parse_legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Parse the 1- to 4-part numeric IPv4 forms that ``inet_aton`` accepts."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_parse_ipv4_part(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    values = [number for number in numbers if number is not None]
    *head, last = values
    if any(value > 255 for value in head):
        return None
    last_bits = 8 * (4 - len(head))
    if last >= 1 << last_bits:
        return None
    value = 0
    for byte in head:
        value = (value << 8) | byte
    return ipaddress.IPv4Address((value << last_bits) | last)


def parse_host_address(host: str) -> IPAddress | None:
    """Return the IP address *host* spells (brackets, zones and legacy IPv4 allowed), or None."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    elif text.endswith("."):
        text = text[:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    return _parse_legacy_ipv4(text)


def _is_internal_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv4Address):
        return any(address in network for network in _IPv4_INTERNAL)
    embedded: ipaddress.IPv4Address | None = address.ipv4_mapped or address.sixtofour
    if embedded is None and (address in _IPv6_IPV4_COMPATIBLE or address in _IPv6_NAT64):
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if embedded is not None and _is_internal_address(embedded):
        return True
    teredo = address.teredo
    if teredo is not None and _is_internal_address(teredo[1]):
        return True
    return any(address in network for network in _IPv6_INTERNAL)


def _is_localhost_name(host: str) -> bool:
    name = host.strip().rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def is_internal_host(host: str) -> bool:
    """Tell whether a URL host (name or address literal) is internal and must be refused.

    >>> is_internal_host("0x7f.1"), is_internal_host("example.com")
    (True, False)
    """
    if _is_localhost_name(host):
        return True
    address = parse_host_address(host)
    return address is not None and _is_internal_address(address)


def is_loopback_host(host: str) -> bool:
    """Tell whether *host* is a loopback address literal (127.0.0.0/8 or ::1)."""
    address = parse_host_address(host)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def is_loopback_name(host: str) -> bool:
    """Tell whether *host*, as written (no spaces), names this machine: localhost or loopback.

    >>> is_loopback_name("localhost"), is_loopback_name("::1"), is_loopback_name("10.0.0.1")
    (True, True, False)
    """
    if not host or host != host.strip():
        return False
    return _is_localhost_name(host) or is_loopback_host(host)

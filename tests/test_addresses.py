"""Tests for ``zimage_async._addresses``: which hosts count as internal, in every spelling."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from zimage_async._addresses import internal_host_reason, parse_legacy_ipv4

# The test's own list of internal IPv4 networks, written apart from the module's table.
INTERNAL_V4 = [
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
    )
]
# Every IPv4 range a public address is drawn outside of.
SPECIAL_V4 = [
    *INTERNAL_V4,
    *(
        ipaddress.IPv4Network(net)
        for net in (
            "192.0.0.0/24",
            "192.0.2.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "224.0.0.0/3",
        )
    ),
]
# Public IPv6 is drawn from 2000::/3 outside of these.
SPECIAL_V6 = [
    ipaddress.IPv6Network(net) for net in ("2001::/32", "2001:db8::/32", "2002::/16", "3fff::/20")
]


def _octets(number: int) -> list[int]:
    return list(ipaddress.IPv4Address(number).packed)


# Spellings of an IPv4 address that inet_aton (and URL parsers) accept.
V4_FORMS: dict[str, Callable[[int], str]] = {
    "dotted": lambda n: str(ipaddress.IPv4Address(n)),
    "decimal": lambda n: str(n),
    "hex": lambda n: f"0x{n:x}",
    "upper-hex": lambda n: f"0X{n:X}",
    "dotted-hex": lambda n: ".".join(f"0x{o:02x}" for o in _octets(n)),
    "dotted-octal": lambda n: ".".join(f"0{o:o}" for o in _octets(n)),
    "three-part": lambda n: f"{n >> 24}.{(n >> 16) & 0xFF}.{n & 0xFFFF}",
    "two-part": lambda n: f"{n >> 24}.{n & 0xFFFFFF}",
    "two-part-hex": lambda n: f"0x{n >> 24:x}.0x{n & 0xFFFFFF:x}",
    "mixed": lambda n: "0x{:x}.{}.0{:o}.{}".format(*_octets(n)),
}
# Spellings of an IPv4 address inside IPv6 literals.
V6_EMBEDDING_FORMS: dict[str, Callable[[int], str]] = {
    "mapped": lambda n: f"::ffff:{ipaddress.IPv4Address(n)}",
    "mapped-hex": lambda n: f"::ffff:{n >> 16:x}:{n & 0xFFFF:x}",
    "mapped-bracketed": lambda n: f"[::ffff:{ipaddress.IPv4Address(n)}]",
    "mapped-upper": lambda n: f"::FFFF:{n >> 16:X}:{n & 0xFFFF:X}",
    "compatible": lambda n: f"::{ipaddress.IPv4Address(n)}",
    "nat64": lambda n: f"64:ff9b::{ipaddress.IPv4Address(n)}",
    "6to4": lambda n: f"2002:{n >> 16:x}:{n & 0xFFFF:x}::1",
}
# The decorations a URL host may carry around any of those spellings.
DECORATIONS: dict[str, Callable[[str], str]] = {
    "plain": lambda host: host,
    "trailing-dot": lambda host: host if ":" in host else host + ".",
    "padded": lambda host: f" {host} ",
}

internal_v4 = st.sampled_from(INTERNAL_V4).flatmap(
    lambda net: st.integers(int(net.network_address), int(net.broadcast_address))
)
public_v4 = st.integers(0, 2**32 - 1).filter(
    lambda n: not any(ipaddress.IPv4Address(n) in net for net in SPECIAL_V4)
)
public_v6 = st.integers(0x2000 << 112, (0x4000 << 112) - 1).filter(
    lambda n: not any(ipaddress.IPv6Address(n) in net for net in SPECIAL_V6)
)
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
public_name = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(label, min_size=1, max_size=3),
    st.sampled_from(["com", "org", "net", "io", "de", "dev", "example", "xn--p1ai"]),
)


def _random_case(text: str, flips: list[bool]) -> str:
    flips = (flips + [False] * len(text))[: len(text)]
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips, strict=True))


@given(
    number=internal_v4,
    form=st.sampled_from(sorted(V4_FORMS)),
    decoration=st.sampled_from(sorted(DECORATIONS)),
)
def test_internal_ipv4_refused_in_every_form(number: int, form: str, decoration: str) -> None:
    """Every address in an internal IPv4 network is refused, however it is spelled."""
    host = DECORATIONS[decoration](V4_FORMS[form](number))
    assert internal_host_reason(host) is not None


@given(number=internal_v4, form=st.sampled_from(sorted(V6_EMBEDDING_FORMS)))
def test_internal_ipv4_refused_inside_ipv6(number: int, form: str) -> None:
    """An internal IPv4 address embedded in an IPv6 literal is refused."""
    assert internal_host_reason(V6_EMBEDDING_FORMS[form](number)) is not None


@given(number=public_v4, form=st.sampled_from(sorted(V4_FORMS)))
def test_legacy_forms_agree_with_inet_aton(number: int, form: str) -> None:
    """The numeric parser reads every generated spelling as inet_aton does."""
    text = V4_FORMS[form](number)
    assert parse_legacy_ipv4(text) == ipaddress.IPv4Address(socket.inet_aton(text))
    assert int(ipaddress.IPv4Address(socket.inet_aton(text))) == number


@given(
    number=public_v4,
    form=st.sampled_from(sorted(V4_FORMS)),
    decoration=st.sampled_from(sorted(DECORATIONS)),
)
@example(number=int(ipaddress.IPv4Address("93.184.216.34")), form="dotted", decoration="plain")
def test_public_ipv4_accepted_in_every_form(number: int, form: str, decoration: str) -> None:
    """An address outside every special range is accepted in every spelling."""
    host = DECORATIONS[decoration](V4_FORMS[form](number))
    assert internal_host_reason(host) is None


@given(number=public_v4, form=st.sampled_from(["mapped", "mapped-hex", "nat64", "6to4"]))
def test_public_ipv4_accepted_inside_ipv6(number: int, form: str) -> None:
    """A public IPv4 address in a routable IPv6 embedding is accepted."""
    assert internal_host_reason(V6_EMBEDDING_FORMS[form](number)) is None


@given(number=public_v6, bracketed=st.booleans(), exploded=st.booleans(), upper=st.booleans())
def test_public_ipv6_accepted(number: int, bracketed: bool, exploded: bool, upper: bool) -> None:
    """A global unicast IPv6 address outside the special ranges is accepted in any spelling."""
    address = ipaddress.IPv6Address(number)
    text = address.exploded if exploded else address.compressed
    text = text.upper() if upper else text
    assert internal_host_reason(f"[{text}]" if bracketed else text) is None


@given(
    network=st.sampled_from(["fe80::/10", "fc00::/7", "ff00::/8", "fec0::/10"]),
    offset=st.integers(0, 2**64),
    zone=st.sampled_from(["", "%eth0", "%25eth0", "%1"]),
    bracketed=st.booleans(),
)
def test_internal_ipv6_refused(network: str, offset: int, zone: str, bracketed: bool) -> None:
    """Link-local, unique-local, multicast and site-local IPv6 are refused, zone id or not."""
    net = ipaddress.IPv6Network(network)
    text = str(net.network_address + offset % net.num_addresses) + zone
    assert internal_host_reason(f"[{text}]" if bracketed else text) is not None


@given(name=public_name, flips=st.lists(st.booleans()), trailing_dot=st.booleans())
@example(name="example.com", flips=[], trailing_dot=False)
@example(name="0x7f.example.com", flips=[], trailing_dot=False)
def test_public_names_accepted(name: str, flips: list[bool], trailing_dot: bool) -> None:
    """Ordinary domain names are accepted, in any case and with a trailing dot."""
    host = _random_case(name, flips) + ("." if trailing_dot else "")
    assert internal_host_reason(host) is None


@given(labels=st.lists(label, max_size=3), flips=st.lists(st.booleans()), dot=st.booleans())
def test_localhost_names_refused(labels: list[str], flips: list[bool], dot: bool) -> None:
    """``localhost`` and every name under it is refused, in any case, trailing dot or not."""
    host = _random_case(".".join([*labels, "localhost"]), flips) + ("." if dot else "")
    reason = internal_host_reason(host)
    assert reason is not None
    assert "localhost" in reason


@pytest.mark.parametrize(
    ("host", "phrase"),
    [
        pytest.param("127.0.0.1", "loopback", id="loopback"),
        pytest.param("127.255.255.254", "loopback", id="loopback-top"),
        pytest.param("2130706433", "loopback", id="decimal"),
        pytest.param("0x7f000001", "loopback", id="hex"),
        pytest.param("0x7f.1", "loopback", id="hex-short"),
        pytest.param("0177.0.0.1", "loopback", id="octal"),
        pytest.param("127.1", "loopback", id="short"),
        pytest.param("0x7f.0.0.1", "loopback", id="mixed"),
        pytest.param("127.0.0.1.", "loopback", id="trailing-dot"),
        pytest.param("10.1", "private address (10.0.0.0/8)", id="private-10-short"),
        pytest.param("172.31.255.1", "private address (172.16.0.0/12)", id="private-172"),
        pytest.param("192.168.1.1", "private address (192.168.0.0/16)", id="private-192"),
        pytest.param("169.254.169.254", "link-local", id="cloud-metadata"),
        pytest.param("100.100.100.200", "carrier-grade NAT", id="cgnat"),
        pytest.param("0.0.0.0", "unspecified", id="zero"),  # noqa: S104 - a host under test
        pytest.param("0", "unspecified", id="zero-decimal"),
        pytest.param("224.0.0.1", "multicast", id="multicast"),
        pytest.param("255.255.255.255", "reserved", id="broadcast"),
        pytest.param("::1", "loopback", id="v6-loopback"),
        pytest.param("[::1]", "loopback", id="v6-loopback-bracketed"),
        pytest.param("0:0:0:0:0:0:0:1", "loopback", id="v6-loopback-exploded"),
        pytest.param("::", "unspecified", id="v6-unspecified"),
        pytest.param("fe80::1%eth0", "link-local", id="v6-link-local-zone"),
        pytest.param("[FE80::1%25eth0]", "link-local", id="v6-link-local-url-zone"),
        pytest.param("fd12:3456::1", "unique-local", id="v6-unique-local"),
        pytest.param("::ffff:127.0.0.1", "IPv4-mapped IPv6 address of a loopback", id="mapped"),
        pytest.param("::ffff:7f00:1", "IPv4-mapped IPv6 address of a loopback", id="mapped-hex"),
        pytest.param("::ffff:a00:1", "IPv4-mapped IPv6 address of a private", id="mapped-10"),
        pytest.param("::7f00:1", "IPv4-compatible", id="compatible"),
        pytest.param("64:ff9b::7f00:1", "NAT64", id="nat64"),
        pytest.param("2002:7f00:1::", "6to4", id="6to4"),
        pytest.param("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo", id="teredo"),
        pytest.param("4000::1", "reserved", id="v6-unallocated"),
        pytest.param("localhost", "localhost", id="localhost"),
        pytest.param("LOCALHOST.", "localhost", id="localhost-upper-dot"),
        pytest.param("api.localhost", "localhost", id="under-localhost"),
        pytest.param(
            "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "localhost", id="fullwidth"
        ),
        pytest.param("local\u00adhost", "localhost", id="soft-hyphen"),
        pytest.param(
            "\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11", "loopback", id="ideographic"
        ),
        pytest.param("metadata.google.internal", ".internal", id="dot-internal"),
        pytest.param("printer.local", ".local", id="mdns"),
        pytest.param("metadata", "single-label", id="single-label"),
        pytest.param("999.1.1.1", "malformed numeric", id="octet-overflow"),
        pytest.param("1.2.3.4.5", "malformed numeric", id="five-parts"),
        pytest.param("4294967296", "malformed numeric", id="number-overflow"),
        pytest.param("09.1.1.1", "malformed numeric", id="bad-octal"),
        pytest.param("example.123", "ending in a number", id="numeric-tld"),
        pytest.param("[example.com]", "malformed IPv6", id="bracketed-name"),
        pytest.param("a..b.com", "empty label", id="empty-label"),
        pytest.param("", "empty", id="empty"),
    ],
)
def test_internal_hosts_refused_with_reason(host: str, phrase: str) -> None:
    """Each internal host is refused with a reason naming what kind it is."""
    reason = internal_host_reason(host)
    assert reason is not None
    assert phrase in reason


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("example.com", id="name"),
        pytest.param("api.example.com.", id="trailing-dot"),
        pytest.param("EXAMPLE.COM", id="upper"),
        pytest.param("b\u00fccher.example", id="idn"),
        pytest.param("xn--bcher-kva.example", id="punycode"),
        pytest.param("localhost.example.com", id="localhost-as-first-label"),
        pytest.param("93.184.216.34", id="public-v4"),
        pytest.param("8.8.8.8", id="public-v4-dns"),
        pytest.param("2606:2800:220:1:248:1893:25c8:1946", id="public-v6"),
        pytest.param("[2606:2800:220:1:248:1893:25c8:1946]", id="public-v6-bracketed"),
        pytest.param("::ffff:93.184.216.34", id="mapped-public"),
        pytest.param("64:ff9b::808:808", id="nat64-public"),
    ],
)
def test_public_hosts_accepted(host: str) -> None:
    """A public name or address is not reported as internal."""
    assert internal_host_reason(host) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", id="dotted"),
        pytest.param("2130706433", "127.0.0.1", id="decimal"),
        pytest.param("0x7f000001", "127.0.0.1", id="hex"),
        pytest.param("0x7f.1", "127.0.0.1", id="hex-short"),
        pytest.param("0177.0.0.1", "127.0.0.1", id="octal"),
        pytest.param("127.1", "127.0.0.1", id="two-part"),
        pytest.param("10.1.257", "10.1.1.1", id="three-part"),
        pytest.param("0x", "0.0.0.0", id="bare-0x"),  # noqa: S104 - an expected parse
        pytest.param("1.2.3.4.", "1.2.3.4", id="trailing-dot"),
    ],
)
def test_parse_legacy_ipv4_reads_numeric_forms(text: str, expected: str) -> None:
    """Each legacy numeric spelling parses to the address inet_aton gives."""
    assert parse_legacy_ipv4(text) == ipaddress.IPv4Address(expected)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param(".", id="dot"),
        pytest.param("1..2", id="empty-part"),
        pytest.param("1.2.3.4.5", id="five-parts"),
        pytest.param("256.1", id="byte-overflow"),
        pytest.param("1.2.65536", id="short-overflow"),
        pytest.param("4294967296", id="word-overflow"),
        pytest.param("08", id="bad-octal"),
        pytest.param("0xg", id="bad-hex"),
        pytest.param("+1", id="sign"),
        pytest.param("example.com", id="name"),
        pytest.param("1.2.3.4..", id="two-trailing-dots"),
    ],
)
def test_parse_legacy_ipv4_refuses_non_addresses(text: str) -> None:
    """A text that inet_aton would refuse is not parsed as an address."""
    assert parse_legacy_ipv4(text) is None

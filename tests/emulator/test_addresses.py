"""The internal-address rules for callback hosts."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zimage_async.emulator._addresses import is_internal_host, is_loopback_host


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "0.0.0.0",  # noqa: S104 - an address string, nothing binds to it
        "100.64.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "[::1]",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fdff::1",
        "::ffff:127.0.0.1",
        "::ffff:192.168.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::",
        "localhost",
        "LocalHost",
        "localhost.",
        "foo.localhost",
        "a.b.localhost",
        "2130706433",
        "0x7f.1",
        "0x7f000001",
        "0177.0.0.1",
        "0177.1",
        "127.1",
        "10.1",
        "0",
        "017700000001",
        "0x0a.0x00.0x00.0x01",
    ],
)
def test_internal_hosts_are_recognised(host: str) -> None:
    """Loopback, private, link-local, unique-local, mapped and legacy numeric forms count."""
    assert is_internal_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "localhost.example.com",
        "172.32.0.1",
        "192.169.0.1",
        "11.0.0.1",
        "1.2.3.4.5",
        "0x7g.1",
        "08.1.1.1",
    ],
)
def test_public_hosts_are_not_internal(host: str) -> None:
    """Public names and addresses, and things that are no address at all, pass."""
    assert not is_internal_host(host)


_PRIVATE_V4 = st.sampled_from(
    ["10.0.0.0/8", "127.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
).flatmap(
    lambda net: st.integers(
        int(ipaddress.IPv4Network(net).network_address),
        int(ipaddress.IPv4Network(net).broadcast_address),
    )
)


@given(_PRIVATE_V4)
def test_every_spelling_of_a_private_ipv4_address_is_internal(value: int) -> None:
    """Dotted, single-number, hex, octal and IPv4-mapped spellings are all refused."""
    dotted = str(ipaddress.IPv4Address(value))
    octets = dotted.split(".")
    spellings = [
        dotted,
        str(value),
        hex(value),
        ".".join(f"0{int(octet):o}" for octet in octets),
        ".".join(hex(int(octet)) for octet in octets),
        f"{octets[0]}.{int(octets[1]) << 16 | int(octets[2]) << 8 | int(octets[3])}",
        f"[::ffff:{dotted}]",
    ]
    assert all(is_internal_host(spelling) for spelling in spellings), spellings


@given(st.integers(0, 2**32 - 1))
def test_ipv4_rules_match_the_standard_library_for_private_and_loopback(value: int) -> None:
    """Any address the standard library calls private or loopback is internal here too."""
    address = ipaddress.IPv4Address(value)
    if (
        address.is_loopback
        or address.is_link_local
        or address in ipaddress.IPv4Network("10.0.0.0/8")
        or address in ipaddress.IPv4Network("192.168.0.0/16")
    ):
        assert is_internal_host(str(address))


def test_loopback_hosts_are_only_loopback_literals() -> None:
    """Only 127.0.0.0/8 and ::1 literals count as loopback, not names or private ranges."""
    assert is_loopback_host("127.0.0.1")
    assert is_loopback_host("127.9.9.9")
    assert is_loopback_host("::1")
    assert not is_loopback_host("localhost")
    assert not is_loopback_host("10.0.0.1")

"""bot.media.fetch: the SSRF guard, redirects, byte caps and timeouts, against a real local
server."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.errors import InputError
from bot.media.fetch import (
    PRIVATE_MESSAGE,
    AddressGuard,
    BlockedAddress,
    fetch_bytes,
    fetch_to_file,
    guarded_session,
    is_public,
)
from tests.net_support import BODY, FileServer

TRUSTED = frozenset({"127.0.0.1"})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with guarded_session(TRUSTED) as s:
        yield s


async def get(session: aiohttp.ClientSession, url: str, **kw: float) -> bytes:
    limits = {"max_bytes": 1_000_000, "timeout_s": 5.0, **kw}
    return await fetch_bytes(session, url, option="image", **limits)  # type: ignore[arg-type]


async def refused(session: aiohttp.ClientSession, url: str, **kw: float) -> str:
    with pytest.raises(InputError) as info:
        await get(session, url, **kw)
    assert info.value.option == "image"
    return info.value.message


async def test_fetches_a_file_from_a_trusted_host(server, session):
    """A trusted loopback server is fetched normally."""
    assert await get(session, server.url("/files/body")) == BODY


async def test_streams_to_a_file(server, session, tmp_path):
    """fetch_to_file writes the body to disk and returns its size."""
    dest = tmp_path / "v.bin"
    size = await fetch_to_file(
        session, server.url("/chunked/body"), dest, option="video", max_bytes=10**6, timeout_s=5
    )
    assert size == len(BODY)
    assert dest.read_bytes() == BODY


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",  # loopback (the live server, untrusted here)
        "localhost:{port}",  # a name that resolves to loopback
        "2130706433:{port}",  # 127.0.0.1 as one decimal number
        "0177.0.0.1:{port}",  # octal
        "0x7f000001:{port}",  # hexadecimal
        "127.1:{port}",  # short form
        "[::1]:{port}",
        "[::ffff:127.0.0.1]:{port}",  # IPv4-mapped IPv6
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",  # multicast
        "240.0.0.1",  # reserved
        "[fc00::1]",
        "[fd12:3456::1]",
        "[fe80::1]",
        "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
        "[2002:a00:1::]",  # 6to4 of 10.0.0.1
    ],
)
async def test_refuses_private_addresses_before_connecting(server, host):
    """Every non-public address, however spelled, is refused without any connection."""
    async with guarded_session() as untrusted:
        message = await refused(untrusted, f"http://{host.format(port=server.port)}/files/body")
    assert message == PRIVATE_MESSAGE
    assert server.hits == []


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/a.png", "gopher://example.com/", "/a/relative.png"],
)
async def test_refuses_other_schemes(session, url):
    """Only http and https are fetched."""
    assert "only http:// and https://" in await refused(session, url)


@pytest.mark.parametrize("url", ["http://user:secret@example.com/a.png", "http://user@127.0.0.1/"])
async def test_refuses_credentials_in_the_link(session, url):
    """A user name or password in the link is refused before any lookup."""
    assert "user name or password" in await refused(session, url)


async def test_redirect_to_another_loopback_address_is_refused(server, session):
    """A trusted host redirecting to 127.0.0.2 is refused before that server sees anything."""
    other = await FileServer("127.0.0.2").start()
    try:
        target = other.url("/files/body")
        message = await refused(session, server.url(f"/redirect?to={target}"))
    finally:
        await other.close()
    assert message == PRIVATE_MESSAGE
    assert other.hits == []
    assert len(server.hits) == 1


async def test_redirect_to_a_private_network_is_refused(server, session):
    """A redirect to 10.0.0.1 is refused (the tripwire proves no connection was tried)."""
    message = await refused(session, server.url("/redirect?to=http://10.0.0.1/x.png"))
    assert message == PRIVATE_MESSAGE


async def test_redirects_are_followed_up_to_five(server, session):
    """Five hops are fine."""
    assert await get(session, server.url("/hop/5")) == BODY


async def test_more_than_five_redirects_are_refused(server, session):
    """A sixth hop is refused."""
    assert "redirects more than 5 times" in await refused(session, server.url("/hop/6"))


async def test_dns_rebinding_is_refused_at_connect_time(server):
    """A name that passes the check and then resolves to loopback is refused by the connector."""
    answers = iter([["93.184.216.34"]])  # first answer public, every later one loopback

    async def lookup(host: str, port: int, family: int) -> list[str]:
        return next(answers, ["127.0.0.1"])

    async with guarded_session(lookup=lookup) as rebinding:
        message = await refused(rebinding, f"http://rebind.test:{server.port}/files/body")
    assert message == PRIVATE_MESSAGE
    assert server.hits == []


async def test_connector_refuses_private_addresses_on_its_own(server):
    """Even a plain `session.get` through a guarded session cannot reach localhost."""
    async with guarded_session(TRUSTED) as s:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await s.get(f"http://localhost:{server.port}/files/body")
    assert isinstance(info.value.os_error, BlockedAddress)
    assert server.hits == []


async def test_trusted_host_names_bypass_the_guard(server):
    """A host name in trusted_hosts is fetched even though it is loopback."""
    async with guarded_session({"LOCALHOST"}) as s:
        assert await get(s, f"http://localhost:{server.port}/files/body") == BODY


async def test_plain_sessions_are_not_used(server):
    """fetch_* refuse a session whose connector is not guarded (a programming error)."""
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(TypeError):
            await get(plain, server.url("/files/body"))
    assert server.hits == []


async def test_http_errors_name_the_status(server, session):
    """A 404 says so."""
    assert "the link answered 404" in await refused(session, server.url("/status/404"))


async def test_unreachable_host(session):
    """Nothing listening: the link could not be reached."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    assert "could not be reached" in await refused(session, f"http://127.0.0.1:{port}/a.png")


async def test_unknown_host_name():
    """A name that does not resolve is unreachable, with a hint."""

    async def lookup(host: str, port: int, family: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async with guarded_session(lookup=lookup) as s:
        assert "host was not found" in await refused(s, "http://no-such-host.test/a.png")


async def test_a_stalling_server_times_out(server, session):
    """One overall timeout covers the body too, and its message says how long."""
    started = time.monotonic()
    message = await refused(session, server.url("/stall"), timeout_s=0.3)
    assert message == "could not download the file in 0.3 s."
    assert time.monotonic() - started < 2


async def test_content_length_over_the_cap_is_refused(server, session):
    """A Content-Length over the cap is refused before reading the body."""
    message = await refused(session, server.url("/files/body"), max_bytes=5000)
    assert message == "the file is 0.00954 MB, over the 0.00477 MB limit."


async def test_stream_over_the_cap_is_refused(server, session):
    """Without a Content-Length, the running total is what counts."""
    message = await refused(session, server.url("/chunked/body"), max_bytes=5000)
    assert message == "the file is over the 0.00477 MB limit."


async def test_failed_download_leaves_no_partial_file(server, session, tmp_path):
    """fetch_to_file removes what it wrote when the download fails."""
    dest = tmp_path / "v.bin"
    with pytest.raises(InputError):
        await fetch_to_file(
            session, server.url("/chunked/body"), dest, option="video", max_bytes=5000, timeout_s=5
        )
    assert not dest.exists()


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("2002:808:808::", True),  # 6to4 of a public address
        ("127.0.0.1", False),
        ("100.64.0.1", False),
        ("192.0.2.1", False),  # documentation
        ("::ffff:8.8.8.8", True),  # IPv4-mapped: judged by the IPv4 address inside
        ("::ffff:10.0.0.1", False),
        ("fec0::1", False),  # site-local
        ("ff02::1", False),
        ("::", False),
    ],
)
def test_is_public(address, public):
    """The allow-list: only global unicast addresses pass."""
    assert is_public(ipaddress.ip_address(address)) is public


async def test_guard_trusts_ip_literals_in_any_spelling():
    """Trusted IPv6 addresses match however they are written; names ignore case and the dot."""
    guard = AddressGuard({"::1", "Example.COM."})
    assert guard.is_trusted("[0:0::1]")
    assert guard.is_trusted("example.com")
    assert not guard.is_trusted("2130706433")

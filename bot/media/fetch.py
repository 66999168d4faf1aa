"""Downloads of user media: guarded against server-side request forgery, capped, time-limited.

A link a user typed must never make the bot talk to its own network (cloud metadata at
169.254.169.254, an admin panel on 10.x, a database on 127.0.0.1). Every host is resolved and
refused unless all its addresses are public; the connector resolves through the same guard, so a
second DNS answer (rebinding) cannot swap in a private address between the check and the connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bot.errors import InputError
from bot.units import MiB, format_mb

MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
FILE_BUFFER_BYTES = MiB  # batch disk writes so each worker-thread hop moves a useful amount
SCHEMES = frozenset({"http", "https"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PRIVATE_MESSAGE = "that link points to a private network address, which the bot does not fetch."
_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; `is_global` already says no
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # an IPv4 address reached through a NAT64 gateway

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Lookup = Callable[[str, int, int], Awaitable[list[str]]]  # (host, port, family) -> addresses


class BlockedAddress(OSError):
    """A host resolved to an address the guard refuses. An OSError, so that aiohttp's connector
    passes it on (as `ClientConnectorDNSError.os_error`) instead of swallowing it."""


def over_limit(max_bytes: int, size: int | None = None) -> str:
    """The one wording for "too many bytes", whether known in advance or found while streaming."""
    if size is None:
        return f"the file is over the {format_mb(max_bytes)} MB limit."
    return f"the file is {format_mb(size)} MB, over the {format_mb(max_bytes)} MB limit."


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if any: ::ffff:a.b.c.d, 6to4, NAT64."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None or ip.sixtofour is not None:
        return ip.ipv4_mapped or ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses (an allow-list, not a deny-list)."""
    inner = _embedded_ipv4(ip)
    if inner is not None:
        return is_public(inner)
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip in _CGNAT:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return False
    # is_global is False for loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7),
    # link-local (169.254/16, fe80::/10), documentation and benchmark ranges.
    return ip.is_global


def literal_ip(host: str) -> IPAddress | None:
    """The address a URL host spells directly, including the all-digits form (2130706433)."""
    host = host.strip("[]")
    if host.isdigit():
        with suppress(ValueError):
            return ipaddress.ip_address(int(host))
    with suppress(ValueError):
        return ipaddress.ip_address(host)
    return None


def _normal_host(host: str) -> str:
    """Spelling-insensitive for names and IPv6, but legacy numeric forms (2130706433) are not
    read as addresses here: trust goes to what was written, not to what it may decode to."""
    host = host.strip("[]").rstrip(".").lower()
    with suppress(ValueError):
        return str(ipaddress.ip_address(host))
    return host


async def _system_lookup(host: str, port: int, family: int) -> list[str]:
    loop = asyncio.get_running_loop()  # getaddrinfo runs in the loop's executor: no blocking
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressGuard(AbstractResolver):
    """Resolves host names, and refuses any that has a non-public address unless it is trusted.

    Used twice per request: by `check_url` before connecting (for a clear message), and by the
    connector for the connection itself, so only addresses that passed are ever dialled.
    """

    def __init__(self, trusted_hosts: Iterable[str] = (), lookup: Lookup | None = None) -> None:
        self.trusted = frozenset(_normal_host(h) for h in trusted_hosts if h.strip())
        self._lookup = lookup or _system_lookup

    def is_trusted(self, host: str) -> bool:
        return _normal_host(host) in self.trusted

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._lookup(host, port, family)
        if not self.is_trusted(host):
            # Refuse if any answer is private: a host with one public and one private address
            # is either misconfigured or an attack, and neither is worth the risk.
            blocked = [a for a in addresses if not is_public(ipaddress.ip_address(a))]
            if blocked:
                raise BlockedAddress(f"{host} resolves to {blocked[0]}")
        return [_result(host, address, port) for address in addresses]

    async def close(self) -> None:
        """Nothing to release: lookups borrow the loop's executor."""

    async def check_url(self, url: URL, option: str) -> None:
        """Refuse a parsed link whose host is, or resolves to, a non-public address."""
        host = url.raw_host or ""  # ASCII (punycode) for lookups and the trusted list
        if self.is_trusted(host):
            return
        ip = literal_ip(url.host or "")  # decoded, so an IPv6 zone (%25eth0) parses
        if ip is not None:
            if not is_public(ip):
                raise InputError(option, PRIVATE_MESSAGE)
            return
        try:
            await self.resolve(host, url.port or 0, socket.AF_UNSPEC)
        except BlockedAddress:
            raise InputError(option, PRIVATE_MESSAGE) from None
        except OSError:
            raise InputError(
                option, "the link could not be reached (its host was not found)."
            ) from None


def _result(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    numeric = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV  # the connector must not re-resolve
    return ResolveResult(
        hostname=host, host=address, port=port, family=family, proto=0, flags=numeric
    )


class GuardedConnector(aiohttp.TCPConnector):
    """A connector that resolves through an `AddressGuard`; `fetch_*` insist on one."""

    def __init__(self, guard: AddressGuard, **kwargs: Any) -> None:
        super().__init__(resolver=guard, **kwargs)
        self.guard = guard


def guarded_session(
    trusted_hosts: Iterable[str] = (), *, lookup: Lookup | None = None, **kwargs: Any
) -> aiohttp.ClientSession:
    """A session for fetching user media; open it with `async with` (in `main()` or per use)."""
    connector = GuardedConnector(AddressGuard(trusted_hosts, lookup))
    # trust_env=False: a proxy from the environment would dial the address, not us.
    return aiohttp.ClientSession(connector=connector, trust_env=False, **kwargs)


def parse_link(link: str | URL, option: str) -> URL:
    """A URL the bot may fetch: absolute http(s), a host, no user name or password."""
    try:
        url = link if isinstance(link, URL) else URL(link.strip())
    except (ValueError, TypeError):
        raise InputError(option, "that is not a valid link.") from None
    if url.scheme.lower() not in SCHEMES:
        raise InputError(option, "only http:// and https:// links can be fetched.")
    if not url.raw_host:
        raise InputError(option, "that link has no host name.")
    if url.user is not None or url.password is not None:
        raise InputError(
            option, "links with a user name or password are not fetched; share a public link."
        )
    return url


def _guard_of(session: aiohttp.ClientSession) -> AddressGuard:
    connector = session.connector
    if not isinstance(connector, GuardedConnector):
        raise TypeError("media fetches need a session from bot.media.fetch.guarded_session()")
    return connector.guard


def _redirect_target(resp: aiohttp.ClientResponse, option: str) -> URL | None:
    location = resp.headers.get("Location")
    if resp.status not in REDIRECTS or not location:
        return None
    try:
        return parse_link(resp.url.join(URL(location)), option)
    except ValueError:
        raise InputError(option, "the link redirects to an address that is not valid.") from None


@dataclass(frozen=True)
class Bearer:
    """A token for one origin (a chat platform's private file host): sent to that scheme, host
    and port only, never to another origin a redirect leads to."""

    origin: str  # e.g. "https://files.slack.com"
    token: str = field(repr=False)

    def headers_for(self, url: URL) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if origin_of(url) == self.origin else {}


def origin_of(url: URL | str) -> str:
    parsed = URL(str(url))
    return str(parsed.origin()) if parsed.is_absolute() else ""


@asynccontextmanager
async def _response(
    session: aiohttp.ClientSession, link: str, option: str, bearer: Bearer | None = None
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The final response, following redirects ourselves so that every hop is checked."""
    guard = _guard_of(session)
    url = parse_link(link, option)
    for _ in range(MAX_REDIRECTS + 1):
        await guard.check_url(url, option)
        headers = bearer.headers_for(url) if bearer else {}
        async with session.get(url, allow_redirects=False, headers=headers) as resp:
            target = _redirect_target(resp, option)
            if target is None:
                _check_answer(resp, option, bearer)
                yield resp
                return
        url = target
    raise InputError(option, f"the link redirects more than {MAX_REDIRECTS} times.")


def _check_answer(resp: aiohttp.ClientResponse, option: str, bearer: Bearer | None) -> None:
    if resp.status >= 400:
        raise InputError(option, f"the link answered {resp.status}; check that it is public.")
    if bearer is not None and resp.content_type == "text/html":
        # A private file host answers a missing or refused token with its sign-in page.
        raise InputError(option, "the file host asked to sign in: the bot may not read this "
                                 "file (is the app installed with files:read?).")


async def _stream(
    resp: aiohttp.ClientResponse,
    write: Callable[[bytes], Awaitable[None]],
    option: str,
    max_bytes: int,
) -> int:
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise InputError(option, over_limit(max_bytes, resp.content_length))
    total = 0
    async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
        total += len(chunk)
        if total > max_bytes:  # the header may be absent or lie; count what actually arrives
            raise InputError(option, over_limit(max_bytes))
        await write(chunk)
    return total


async def _download(
    session: aiohttp.ClientSession,
    link: str,
    write: Callable[[bytes], Awaitable[None]],
    *,
    option: str,
    max_bytes: int,
    timeout_s: float,
    bearer: Bearer | None = None,
) -> int:
    """Stream `link` into `write`; every failure becomes an InputError naming `option`."""
    try:
        async with asyncio.timeout(timeout_s), _response(session, link, option, bearer) as resp:
            return await _stream(resp, write, option, max_bytes)
    except TimeoutError:
        raise InputError(option, f"could not download the file in {timeout_s:g} s.") from None
    except aiohttp.ClientConnectorCertificateError:
        raise InputError(option, "the link's HTTPS certificate is not valid.") from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, BlockedAddress):
            raise InputError(option, PRIVATE_MESSAGE) from None
        raise InputError(option, "the link could not be reached.") from None
    except aiohttp.InvalidURL:
        raise InputError(option, "that is not a valid link.") from None
    except aiohttp.ClientError:
        raise InputError(option, "the download was interrupted; try again.") from None


async def fetch_bytes(
    session: aiohttp.ClientSession, link: str, *, option: str, max_bytes: int, timeout_s: float,
    bearer: Bearer | None = None,
) -> bytes:
    """The body of `link` in memory (images, audio: at most a few tens of MB)."""
    buffer = bytearray()

    async def write(chunk: bytes) -> None:
        buffer.extend(chunk)

    await _download(session, link, write, option=option, max_bytes=max_bytes, timeout_s=timeout_s,
                    bearer=bearer)
    return bytes(buffer)


class _FileSink:
    """Collects chunks and writes them in MiB batches from a worker thread."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._buffer = bytearray()

    async def write(self, chunk: bytes) -> None:
        self._buffer.extend(chunk)
        if len(self._buffer) >= FILE_BUFFER_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            await asyncio.to_thread(self._file.write, data)


async def fetch_to_file(
    session: aiohttp.ClientSession,
    link: str,
    dest: Path,
    *,
    option: str,
    max_bytes: int,
    timeout_s: float,
    bearer: Bearer | None = None,
) -> int:
    """Stream `link` into `dest` (videos: never whole in memory); the byte count. A failed
    download leaves no partial file behind."""
    file = await asyncio.to_thread(dest.open, "wb")
    sink = _FileSink(file)
    done = False
    try:
        size = await _download(
            session, link, sink.write, option=option, max_bytes=max_bytes, timeout_s=timeout_s,
            bearer=bearer,
        )
        await sink.flush()
        done = True
    finally:
        await asyncio.to_thread(file.close)
        if not done:
            await asyncio.to_thread(dest.unlink, missing_ok=True)
    return size

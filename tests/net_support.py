"""Network pieces shared by the tests: a file server on loopback, a slow relay, and a
tripwire that fails any test which tries to connect outside the loopback network."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from typing import Any

import aiohappyeyeballs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

BODY = b"0123456789" * 1000  # what /files/body and the redirect chains serve


class FileServer:
    """A real aiohttp.web server on a loopback address: serves files and misbehaves on request.

    /files/<name>      the file, with Content-Length
    /chunked/<name>    the file, chunked, no Content-Length
    /redirect?to=URL   302 to URL
    /hop/<n>           302 to /hop/<n-1>; /hop/0 serves BODY
    /status/<code>     an empty answer with that status
    /stall             headers, a few bytes, then nothing until the server closes
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.files: dict[str, bytes] = {"body": BODY}
        self.hits: list[str] = []
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_get("/{kind}/{arg:.*}", self._handle)
        app.router.add_get("/{kind}", self._handle)
        self._server = TestServer(app, host=host)

    @property
    def port(self) -> int:
        assert self._server.port is not None
        return self._server.port

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def add(self, name: str, data: bytes) -> str:
        self.files[name] = data
        return self.url(f"/files/{name}")

    async def start(self) -> FileServer:
        await self._server.start_server()
        return self

    async def close(self) -> None:
        self._release.set()  # let stalled handlers finish so the server can shut down at once
        await self._server.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path_qs)
        kind, arg = request.match_info["kind"], request.match_info.get("arg", "")
        if kind == "files":
            return web.Response(body=self.files[arg])
        if kind == "chunked":
            return await self._chunked(request, self.files[arg])
        if kind == "redirect":
            raise web.HTTPFound(request.query["to"])
        if kind == "hop":
            n = int(arg)
            if n > 0:
                raise web.HTTPFound(f"/hop/{n - 1}")
            return web.Response(body=BODY)
        if kind == "status":
            return web.Response(status=int(arg))
        return await self._stall(request)

    async def _chunked(self, request: web.Request, data: bytes) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(data), 4096):
            await resp.write(data[i : i + 4096])
        await resp.write_eof()
        return resp

    async def _stall(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "1000"})
        await resp.prepare(request)
        await resp.write(b"x" * 10)
        await self._release.wait()
        return resp


def install_tripwire(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every connection attempt to a non-loopback address fail (and be recorded), so no
    test can send traffic off this machine even if the guard were broken."""
    real = aiohappyeyeballs.start_connection
    outside: list[str] = []

    async def loopback_only(addr_infos, *args, **kwargs):  # type: ignore[no-untyped-def]
        for info in addr_infos:
            address = str(info[4][0])
            if not ipaddress.ip_address(address.split("%")[0]).is_loopback:
                outside.append(address)
                raise OSError(f"test tripwire: refused to connect to {address}")
        return await real(addr_infos, *args, **kwargs)

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", loopback_only)
    _guard_sockets(monkeypatch, outside)
    return outside


def _guard_sockets(monkeypatch: pytest.MonkeyPatch, outside: list[str]) -> None:
    """The same for blocking clients (requests, as the official dashscope SDK uses)."""
    real = socket.socket.connect

    def loopback_only(sock: socket.socket, address: Any) -> None:
        host = str(address[0]) if sock.family in (socket.AF_INET, socket.AF_INET6) else ""
        if host and not _is_loopback(host):
            outside.append(host)
            raise OSError(f"test tripwire: refused to connect to {host}")
        real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:  # a name, not an address: only localhost is surely local
        return host == "localhost"
class SlowLink:
    """A TCP relay to a loopback port whose first `slow` connections reach it only after
    `delay_s` real seconds, and do reach it even if the client has given up by then: a slow
    network path whose request still lands (the server acts on it; the client never hears)."""

    def __init__(self, target_port: int, delay_s: float, slow: int = 1) -> None:
        self.target_port = target_port
        self.delay_s = delay_s
        self.slow = slow
        self.port = 0
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    async def start(self) -> SlowLink:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        for relay in self._relays:
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        delay_s = self.delay_s if self.slow > 0 else 0.0
        self.slow -= 1
        relay = asyncio.create_task(self._relay(reader, writer, delay_s))
        self._relays.add(relay)
        relay.add_done_callback(self._relays.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     delay_s: float) -> None:
        await asyncio.sleep(delay_s)  # the client's bytes wait, readable even once it has left
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until the source ends; what the sink can no longer take is dropped. The sink is
    left open: a server whose client left still finishes its answer."""
    while data := await source.read(65536):
        if not sink.is_closing():
            sink.write(data)
            with contextlib.suppress(ConnectionError):
                await sink.drain()

"""Shared fixtures: a running DashScope simulator, an HTTP session, a client bound to both."""

from __future__ import annotations

import asyncio
import base64
import io
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from bot.provider.client import DashScope
from bot.sim.server import SimConfig, Simulator, run_simulator
from tests.asyncio_support import Unretrieved
from tests.media_support import detailed_video
from tests.net_support import FileServer, install_tripwire
from tests.pg_support import pg_url  # noqa: F401 (a fixture: a PostgreSQL database per test)


def make_image(size: tuple[int, int] = (640, 480), fmt: str = "PNG", mode: str = "RGB") -> bytes:
    """A small solid image in memory, in any format and mode Pillow writes."""
    buf = io.BytesIO()
    Image.new(mode, size, "red" if mode != "RGBA" else (255, 0, 0, 128)).save(buf, fmt)
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.fixture
def sim_config() -> SimConfig:
    """Tasks run 1000x faster than real time; a test module may override this fixture."""
    return SimConfig(time_scale=1000.0)


@pytest.fixture
async def sim(sim_config: SimConfig) -> AsyncIterator[Simulator]:
    async with run_simulator(sim_config) as simulator:
        yield simulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def slept() -> list[float]:
    """The back-off waits the `client` fixture asked for, in order."""
    return []


@pytest.fixture
def client(sim: Simulator, session: aiohttp.ClientSession, slept: list[float]) -> DashScope:
    """A client of `sim` whose back-off waits are recorded instead of slept."""

    async def record(seconds: float) -> None:
        slept.append(seconds)

    return DashScope(session, sim.base_url, sim.api_key, timeout_s=5, sleep=record,
                     rng=random.Random(7))


@pytest.fixture(autouse=True)
def tripwire(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test: any connection outside the loopback network fails it."""
    outside = install_tripwire(monkeypatch)
    yield
    assert outside == [], "a test tried to connect outside the loopback network"


@pytest.fixture
def asyncio_debug() -> bool:
    """Whether tests run in asyncio's debug mode (the engine's tests override this)."""
    return False


@pytest.fixture(autouse=True)
async def unretrieved(asyncio_debug: bool) -> AsyncIterator[Unretrieved]:
    """Every test: any exception a background task raised that nobody retrieved fails it."""
    hooks = Unretrieved(asyncio.get_running_loop(), debug=asyncio_debug).install()
    yield hooks
    reports = hooks.uninstall()
    assert reports == [], "exceptions were never retrieved:\n" + "\n".join(reports)


@pytest.fixture
async def server() -> AsyncIterator[FileServer]:
    srv = await FileServer().start()
    yield srv
    await srv.close()


@pytest.fixture(scope="session")
def clip_1080p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 1080P result: 5 s at 16 fps with sound, detailed and moving, ~18 MiB (made once:
    the media and the Discord tests both fit it into 10 MiB)."""
    path = tmp_path_factory.mktemp("clip1080") / "result.mp4"
    return detailed_video(path, 1920, 1080, 5.0, fps=16, audio=True, crf=8)

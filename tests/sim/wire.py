"""Raw-HTTP helpers for the simulator tests: the provider's headers, a create, a query."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp

from bot.provider.catalog import BEIJING
from bot.sim.server import Simulator
from tests.conftest import data_url, make_image

KF2V_PATH = "/services/aigc/image2video/video-synthesis"
I2V_PATH = "/services/aigc/video-generation/video-synthesis"
IMAGE = data_url(make_image())


def list_time(epoch_s: float) -> str:
    """A task-list time as the SDK documents it (`YYYYMMDDhhmmss`, e.g. 20230420000000), UTC+8."""
    return datetime.fromtimestamp(epoch_s, BEIJING).strftime("%Y%m%d%H%M%S")


def headers(sim: Simulator, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.api_key}", "X-DashScope-Async": "enable", **extra}


def kf2v(model: str = "wan2.2-kf2v-flash", **params: Any) -> dict[str, Any]:
    media = {"first_frame_url": IMAGE, "last_frame_url": IMAGE}
    return {"model": model, "input": {**media, "prompt": "a cat"}, "parameters": params}


async def post(session: aiohttp.ClientSession, sim: Simulator, body: Any, path: str = KF2V_PATH,
               hdrs: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with session.post(sim.base_url + path, json=body,
                            headers=headers(sim) if hdrs is None else hdrs) as resp:
        return resp.status, await resp.json()


async def query(session: aiohttp.ClientSession, sim: Simulator, path: str
                ) -> tuple[int, dict[str, Any]]:
    async with session.get(sim.base_url + path, headers=headers(sim)) as resp:
        return resp.status, await resp.json()


async def outcome(session: aiohttp.ClientSession, sim: Simulator, body: dict[str, Any],
                  path: str = KF2V_PATH) -> dict[str, Any]:
    """Create, let an hour pass, and return the task query answer."""
    status, created = await post(session, sim, body, path)
    assert status == 200, created
    await sim.settle()
    sim.advance(3600)
    return (await query(session, sim, f"/tasks/{created['output']['task_id']}"))[1]

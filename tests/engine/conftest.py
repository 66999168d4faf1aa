"""The engine's tests: a running simulator and the engine sharing one compressed clock, a
real SQLite file, and asyncio's debug mode (a background task whose failure nobody retrieved
fails the test, with where the task was made)."""

from __future__ import annotations

import pytest

from bot.clock import ScaledClock
from bot.sim.server import SimConfig
from tests.engine_support import SCALE, Rig, settings_for


@pytest.fixture
def asyncio_debug() -> bool:
    return True


@pytest.fixture
def clock_scale() -> float:
    """Clock seconds per real second (a module may slow time down)."""
    return SCALE


@pytest.fixture
def running_s() -> float:
    """How long the simulator's tasks run, in clock seconds."""
    return 60.0


@pytest.fixture
def clock(clock_scale: float) -> ScaledClock:
    return ScaledClock(clock_scale)


@pytest.fixture
def sim_config(clock: ScaledClock, running_s: float) -> SimConfig:
    return SimConfig(clock=clock.now, time_scale=1.0, pending_s=2.0, running_s=running_s)


@pytest.fixture
async def rig(sim, session, tmp_path, clock) -> Rig:
    return Rig(sim, tmp_path / "jobs.sqlite3", clock, settings_for(sim, tmp_path), session)

"""The engine's fixtures (a simulator and an engine on one compressed clock, a real SQLite
file): the health server watches a real engine."""

from tests.engine.conftest import (  # noqa: F401
    asyncio_debug,
    clock,
    clock_scale,
    rig,
    running_s,
    sim_config,
)

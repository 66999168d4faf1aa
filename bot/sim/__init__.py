"""The DashScope simulator: `Simulator` and its `SimConfig`, `run_simulator` to serve one for a
block, `main` for `python -m bot sim`. It imports only the catalog and the leaves."""

from bot.sim.cli import main
from bot.sim.server import Simulator, run_simulator
from bot.sim.state import SimConfig

__all__ = ["SimConfig", "Simulator", "main", "run_simulator"]

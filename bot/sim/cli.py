"""`python -m bot sim`: serve the simulator until Ctrl-C, telling a newcomer what to set."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from bot.config import REGIONS
from bot.sim.durations import SHAPES, Durations
from bot.sim.server import Simulator, run_simulator
from bot.sim.state import DEFAULT_KEY, SimConfig


def banner(sim: Simulator) -> str:
    """What a newcomer needs to point the bot at a running simulator."""
    running = sim.config.running_s
    shape = running.spec if isinstance(running, Durations) else "as configured"
    lines = [
        f"DashScope simulator at {sim.base_url} (region {sim.config.region}, task durations "
        f"{shape}, run {sim.config.time_scale:g}x faster; times are the wall clock's). "
        "Ctrl-C stops it.",
        "Set these for the bot (in .env or the environment):",
        f"  DASHSCOPE_BASE_URL={sim.base_url}",
        f"  DASHSCOPE_API_KEY={sim.api_key}",
    ]
    if sim.config.region != "singapore":
        lines.append(f"  DASHSCOPE_REGION={sim.config.region}")
    return "\n".join(lines)


async def _serve(config: SimConfig) -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a supervisor: stop cleanly
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with run_simulator(config) as sim:
        print(banner(sim), flush=True)
        await stop.wait()


DURATIONS_HELP = (
    "how long each task runs, in seconds before --time-scale, drawn from a shape: "
    + ", ".join(f"{name}:{':'.join(['N'] * count)}" for name, (_, count) in SHAPES.items())
    + " (e.g. constant:3, uniform:60:70, lognormal:90:0.3 for median 90 s and sigma 0.3, "
    "mix:60:240, heavy:90:0.1:5 for one task in ten 5x longer); default constant:60"
)


def config(argv: Sequence[str] | None = None) -> SimConfig:
    """The simulator's settings from `python -m bot sim`'s arguments (exits on a bad one)."""
    parser = argparse.ArgumentParser(prog="python -m bot sim", description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--time-scale", type=float, default=10.0,
                        help="how many times faster than real time tasks run; the calendar "
                             "stays the wall clock (default 10)")
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    parser.add_argument("--region", choices=REGIONS, default="singapore")
    parser.add_argument("--over-limit", choices=("queue", "reject"), default="queue",
                        help="what a create does when the model's slots are busy")
    parser.add_argument("--durations", metavar="SHAPE", default="constant:60",
                        help=DURATIONS_HELP)
    args = parser.parse_args(argv)
    if args.time_scale <= 0:
        parser.error("--time-scale must be above 0")
    try:
        running = Durations.parse(args.durations)
    except ValueError as exc:
        parser.error(f"--durations: {exc}")
    return SimConfig(api_key=args.api_key, port=args.port, region=args.region,
                     time_scale=args.time_scale, over_limit=args.over_limit,
                     running_s=running)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bot sim [--port P] [--time-scale X] [--durations SHAPE] ...`."""
    asyncio.run(_serve(config(argv)))
    return 0

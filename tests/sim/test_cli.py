"""`python -m bot sim`'s arguments: the shape of task durations among them."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest

from bot.sim.cli import banner, config
from bot.sim.durations import SHAPES
from bot.sim.server import Simulator, run_simulator
from bot.sim.state import ManualClock
from tests.sim.test_sim import kf2v, post


async def running_time(argv: list[str], session: aiohttp.ClientSession) -> tuple[str, str]:
    """A task's status just before and just after 3 s of running, on a sim from `argv`."""
    sim_config = dataclasses.replace(config(argv), clock=ManualClock(), pending_s=0,
                                     time_scale=1.0, port=0)
    async with run_simulator(sim_config) as sim:
        await post(session, sim, kf2v())
        await sim.settle()
        task = next(iter(sim.tasks.values()))
        sim.advance(2.9)
        before = task.status(sim.now(), 86_400)
        sim.advance(0.2)
        return before, task.status(sim.now(), 86_400)


async def test_durations_sets_how_long_tasks_run(session: aiohttp.ClientSession) -> None:
    """--durations constant:3: a task succeeds after 3 s, not before."""
    assert await running_time(["--durations", "constant:3"], session) == ("RUNNING", "SUCCEEDED")


async def test_tasks_run_a_minute_without_durations(session: aiohttp.ClientSession) -> None:
    """No --durations: tasks take 60 s as before, so 3 s in they still run."""
    assert await running_time([], session) == ("RUNNING", "RUNNING")


def test_durations_draws_from_the_shape_given() -> None:
    """--durations uniform:60:70 draws only within 60-70 s."""
    running = config(["--durations", "uniform:60:70"]).running_s
    assert callable(running)
    drawn = [running("m") for _ in range(50)]
    assert all(60 <= d <= 70 for d in drawn) and len(set(drawn)) > 1


@pytest.mark.parametrize(("spec", "said"), [("gamma:3", "one of constant"),
                                            ("uniform:60", "as in uniform:1:1")])
def test_a_bad_shape_is_refused_with_what_would_do(
        spec: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown shape or a wrong count of figures: exit 2, saying what is accepted."""
    with pytest.raises(SystemExit) as stopped:
        config(["--durations", spec])
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err


def test_help_lists_every_shape(capsys: pytest.CaptureFixture[str]) -> None:
    """--help names each shape the simulator can draw from."""
    with pytest.raises(SystemExit):
        config(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(f"{name}:N" in text for name in SHAPES)


def test_banner_says_the_shape() -> None:
    """The start-up text tells which durations the tasks are drawn from."""
    assert "task durations mix:60:240" in banner(Simulator(config(["--durations", "mix:60:240"])))

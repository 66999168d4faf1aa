"""Durations drawn from named shapes, for the simulator's running times."""

from __future__ import annotations

import statistics

import aiohttp
import pytest

from bot.sim.durations import Durations
from bot.sim.server import SimConfig, run_simulator
from bot.sim.state import ManualClock
from tests.sim.test_sim import kf2v, post


def test_constant_is_always_the_same():
    """constant:3 draws 3 s every time."""
    assert set(Durations.parse("constant:3").sample(50)) == {3.0}


def test_uniform_stays_in_its_range():
    """uniform:60:70 draws only between 60 and 70 s."""
    drawn = Durations.parse("uniform:60:70").sample(200)
    assert 60 <= min(drawn) < 61 and 69 < max(drawn) <= 70


def test_mix_draws_only_its_two_values_about_equally():
    """mix:60:240 gives 60 s or 240 s, each about half the time."""
    drawn = Durations.parse("mix:60:240").sample(400)
    assert set(drawn) == {60.0, 240.0}
    assert 150 < drawn.count(60.0) < 250


def test_heavy_tail_stretches_about_one_task_in_ten():
    """heavy:90:0.1:5 makes about a tenth of the tasks five times longer."""
    drawn = Durations.parse("heavy:90:0.1:5").sample(1000)
    long = [d for d in drawn if d > 250]
    assert 60 < len(long) < 140
    assert statistics.median(long) == pytest.approx(450, rel=0.1)


def test_lognormal_has_its_median():
    """lognormal:90:0.3 centres on 90 s."""
    assert statistics.median(Durations.parse("lognormal:90:0.3").sample(1000)) == pytest.approx(
        90, rel=0.05)


def test_equal_seeds_draw_equal_durations():
    """Two specs with one seed draw the same sequence, so benchmark runs compare alike."""
    first, second = Durations.parse("lognormal:90:0.6"), Durations.parse("lognormal:90:0.6")
    assert [first("m") for _ in range(5)] == [second("m") for _ in range(5)]


@pytest.mark.parametrize("spec", ["gamma:3", "uniform:60", "constant:x"])
def test_bad_specs_are_refused(spec):
    """An unknown shape, a wrong count of figures or a non-number raise ValueError."""
    with pytest.raises(ValueError):
        Durations.parse(spec)


async def test_the_simulator_runs_tasks_for_the_drawn_time(session: aiohttp.ClientSession):
    """A task of a constant:7 simulator succeeds after 7 s, not before."""
    config = SimConfig(clock=ManualClock(), pending_s=0, running_s=Durations.parse("constant:7"))
    async with run_simulator(config) as sim:
        await post(session, sim, kf2v())
        await sim.settle()
        task = next(iter(sim.tasks.values()))
        sim.advance(6.9)
        assert task.status(sim.now(), 86_400) == "RUNNING"
        sim.advance(0.2)
        assert task.status(sim.now(), 86_400) == "SUCCEEDED"

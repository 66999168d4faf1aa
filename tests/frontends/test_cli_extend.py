"""`python -m bot generate extend` end to end: a real process against the simulator, whose
results are real 480x368 clips (an i2v model takes nothing smaller than 360 px)."""

from __future__ import annotations

import re

import pytest

from bot.media.stitch import duration_s
from bot.sim.server import SimConfig
from tests.clip_support import clip, last_image, mean_difference, received_image
from tests.conftest import make_image
from tests.frontends import test_cli
from tests.frontends.test_cli import run_bot

env = test_cli.env  # the same fixture: the simulator's address, a database in tmp_path

FRAME_TOLERANCE = 1.0  # mean difference per channel value: PNG is lossless, RGB both ways


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(time_scale=200.0, result_video=clip(seconds=1.0))


def job_id(err: str) -> str:
    found = re.search(r"job ([0-9a-f]+): delivered", err)
    assert found, err
    return found[1]


async def test_extend_continues_from_the_last_frame_and_writes_the_chain(sim, env, tmp_path):
    """A clip, extended twice: each new job starts from the previous clip's last frame (the
    picture the provider received), and the chain beside each new clip lasts their sum."""
    image = tmp_path / "cat.png"
    image.write_bytes(make_image((640, 480)))
    code, _, err = await run_bot("generate", "i2v", "--image", str(image), "--prompt", "a cat",
                                 "--resolution", "480P", "--out", "one.mp4",
                                 env=env, cwd=tmp_path)
    assert code == 0, err
    first = job_id(err)
    code, _, err = await run_bot("generate", "extend", "--from", first, "--out", "two.mp4",
                                 env=env, cwd=tmp_path)
    assert code == 0, err
    second = job_id(err)
    create = [r for r in sim.requests if r.route == "create"][-1]
    assert create.body["model"] == "wan2.5-i2v-preview"  # the parent's model: i2v again
    assert create.body["input"]["prompt"] == "a cat"  # the clip's own prompt by default
    assert create.body["parameters"]["resolution"] == "480P"
    received = received_image(sim, create.body, "img_url")
    assert mean_difference(received, last_image(tmp_path / "one.mp4")) < FRAME_TOLERANCE
    assert duration_s(tmp_path / "two-chain.mp4") == pytest.approx(2.0, abs=0.01)

    code, _, err = await run_bot("generate", "extend", "--from", second, "--prompt", "it runs",
                                 "--out", "three.mp4", env=env, cwd=tmp_path)
    assert code == 0, err
    assert "3 clips" in err
    assert duration_s(tmp_path / "three-chain.mp4") == pytest.approx(3.0, abs=0.01)
    assert len([r for r in sim.requests if r.route == "create"]) == 3


async def test_extend_with_a_last_frame_is_first_last_frame(sim, env, tmp_path):
    image = tmp_path / "cat.png"
    image.write_bytes(make_image((640, 480)))
    code, _, err = await run_bot("generate", "i2v", "--image", str(image), "--model",
                                 "wan2.2-i2v-flash", "--out", "one.mp4", env=env, cwd=tmp_path)
    assert code == 0, err
    code, _, err = await run_bot("generate", "extend", "--from", job_id(err), "--last-frame",
                                 str(image), "--out", "two.mp4", env=env, cwd=tmp_path)
    assert code == 0, err
    create = [r for r in sim.requests if r.route == "create"][-1]
    assert create.body["model"] == "wan2.2-kf2v-flash"  # wan2.2, flash: the same family
    assert set(create.body["input"]) >= {"first_frame_url", "last_frame_url"}


async def test_extend_refuses_an_unknown_job_and_spends_nothing(sim, env, tmp_path):
    code, _, err = await run_bot("generate", "extend", "--from", "abcdef12", "--out", "x.mp4",
                                 env=env, cwd=tmp_path)
    assert code == 2 and "from: no job abcdef12" in err
    assert not sim.requests

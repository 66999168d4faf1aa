"""The terminal front end end to end: a real process against the simulator."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from bot.sim.server import SimConfig
from tests.conftest import make_image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(time_scale=200.0)  # a 62 s task takes 0.3 s of the real clock the CLI uses


async def run_bot(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
def env(sim, tmp_path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE", "DISCORD"))}
    return {**clean, "DASHSCOPE_BASE_URL": sim.base_url, "DASHSCOPE_API_KEY": sim.api_key,
            "DATABASE_PATH": str(tmp_path / "data" / "wanbot.sqlite3"),
            "PYTHONPATH": str(ROOT)}  # this checkout's `bot`, not an installed one


@pytest.fixture
def frames(tmp_path) -> tuple[Path, Path]:
    first, last = tmp_path / "first.png", tmp_path / "last.png"
    first.write_bytes(make_image((640, 480)))
    last.write_bytes(make_image((640, 480), "JPEG"))
    return first, last


async def test_generate_writes_the_video(sim, env, frames, tmp_path):
    out = tmp_path / "out" / "cat.mp4"
    code, _, err = await run_bot(
        "generate", "kf2v", "--first-frame", str(frames[0]), "--last-frame", str(frames[1]),
        "--prompt", "a cat", "--resolution", "480P", "--out", str(out), env=env, cwd=tmp_path)
    assert code == 0, err
    assert out.read_bytes() == sim._mp4
    assert "queued" in err and "delivered" in err
    assert len(sim.tasks) == 1 and sim.uploads  # local files went up as temporary uploads


async def test_generate_reports_the_providers_reason(sim, env, frames, tmp_path):
    code, _, err = await run_bot(
        "generate", "kf2v", "--first-frame", str(frames[0]), "--last-frame", str(frames[1]),
        "--prompt", "sim-blocked", "--out", str(tmp_path / "x.mp4"), env=env, cwd=tmp_path)
    assert code == 1 and "[DataInspectionFailed]" in err
    assert not (tmp_path / "x.mp4").exists()


async def test_bad_input_spends_nothing(sim, env, frames, tmp_path):
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(make_image((100, 80)))
    code, _, err = await run_bot(
        "generate", "kf2v", "--first-frame", str(tiny), "--last-frame", str(frames[1]),
        "--out", str(tmp_path / "x.mp4"), env=env, cwd=tmp_path)
    assert code == 2 and "first_frame" in err and "Nothing was submitted" in err
    assert not [r for r in sim.requests if r.route == "create"]  # uploads are free


async def test_a_choice_the_model_lacks_names_what_it_supports(sim, env, frames, tmp_path):
    code, _, err = await run_bot(
        "generate", "kf2v", "--model", "wan2.1-kf2v-plus", "--resolution", "480P",
        "--first-frame", str(frames[0]), "--last-frame", str(frames[1]),
        "--out", str(tmp_path / "x.mp4"), env=env, cwd=tmp_path)
    assert code == 2 and "supports 720P" in err


async def test_check_proves_the_key_works(sim, env, tmp_path):
    code, out, _ = await run_bot("check", env=env, cwd=tmp_path)
    assert code == 0 and out.startswith("ok:")
    code, _, err = await run_bot("check", env={**env, "DASHSCOPE_API_KEY": "sk-wrong-key"},
                                 cwd=tmp_path)
    assert code == 1 and "[InvalidApiKey]" in err and "sk-wrong-key" not in err


async def test_check_tries_every_key_of_a_pool(sim, env, tmp_path):
    """DASHSCOPE_API_KEYS: one line per key, named by its id, never by the key itself."""
    pool = {**env, "DASHSCOPE_API_KEYS": "sk-wrong-key"}
    code, out, err = await run_bot("check", env=pool, cwd=tmp_path)
    assert code == 1 and out.startswith("ok: API key key-") and "[InvalidApiKey]" in err
    assert "sk-wrong-key" not in out + err and sim.api_key not in out + err


async def test_missing_settings_exit_2_with_the_list(tmp_path, env):
    env = {k: v for k, v in env.items() if not k.startswith("DASHSCOPE")}
    code, _, err = await run_bot("check", env=env, cwd=tmp_path)
    assert code == 2 and "DASHSCOPE_API_KEY is not set" in err and "Traceback" not in err


GENERATE = ("generate", "kf2v", "--prompt", "a cat", "--out", "x.mp4")


@pytest.mark.parametrize("fault", ["corrupt", "read-only"])
@pytest.mark.parametrize("command", ["generate", "check"])
async def test_an_unusable_database_is_one_line_and_exit_1(sim, env, frames, tmp_path, fault,
                                                           command):
    """A corrupt database, or one in a folder nothing may be written to: one error line
    naming the file, exit status 1, no traceback, nothing sent."""
    name = "cli.sqlite3" if command == "generate" else "wanbot.sqlite3"
    if fault == "corrupt":
        db = tmp_path / "data" / name
        db.parent.mkdir()
        db.write_bytes(b"not a database" * 1000)
    else:
        db = Path("/proc") / name  # read-only even for root
        env = {**env, "DATABASE_PATH": str(db.with_name("wanbot.sqlite3"))}
    args = ("check",) if command == "check" else (
        *GENERATE, "--first-frame", str(frames[0]), "--last-frame", str(frames[1]))
    code, _, err = await run_bot(*args, env=env, cwd=tmp_path)
    assert code == 1 and err.count("\n") == 1 and str(db) in err
    assert err.startswith("error: wanbot cannot use its database") and "Traceback" not in err
    assert not sim.requests

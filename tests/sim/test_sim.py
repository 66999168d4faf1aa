"""The simulator itself, spoken to with raw HTTP: it must answer like the documents say."""

from __future__ import annotations

import io
import json

import aiohttp
import av
import pytest

from bot.provider import catalog
from bot.sim.cli import banner
from bot.sim.media import make_mp4, make_wav
from bot.sim.server import DEFAULT_KEY, SimConfig, Simulator, run_simulator
from bot.sim.state import ManualClock
from tests.conftest import make_image
from tests.sim.wire import I2V_PATH, IMAGE, KF2V_PATH, headers, kf2v, outcome, post, query


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(clock=ManualClock(), pending_s=10, running_s=60)


# --- the request gate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "message"),
    [(None, "No API-key provided."), ("Bearer sk-wrong", "Invalid API-key provided."),
     ("Basic abc", "Invalid API-key provided.")],
)
async def test_auth(sim: Simulator, session: aiohttp.ClientSession, auth: str | None,
                    message: str) -> None:
    """No key or a wrong one: 401 InvalidApiKey with the provider's words."""
    hdrs = {"X-DashScope-Async": "enable", **({"Authorization": auth} if auth else {})}
    status, body = await post(session, sim, kf2v(), hdrs=hdrs)
    assert (status, body["code"], body["message"]) == (401, "InvalidApiKey", message)
    assert body["request_id"]


async def test_async_header_is_required(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """Without X-DashScope-Async the create is refused with 403 AccessDenied."""
    hdrs = {"Authorization": f"Bearer {sim.api_key}"}
    status, body = await post(session, sim, kf2v(), hdrs=hdrs)
    assert (status, body["code"]) == (403, "AccessDenied")
    assert body["message"] == "current user api does not support synchronous calls"


async def test_json_content_type_is_required(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """A body that is not application/json is an InvalidParameter."""
    async with session.post(sim.base_url + KF2V_PATH, data=json.dumps(kf2v()),
                            headers=headers(sim, **{"Content-Type": "text/plain"})) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == "InvalidParameter"


async def test_model_on_wrong_endpoint(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """kf2v posted to the video-generation endpoint: "url error, please check url!"."""
    status, body = await post(session, sim, kf2v(), path=I2V_PATH)
    assert (status, body["message"]) == (400, "url error, please check url!")


@pytest.mark.parametrize(
    ("region", "model", "known"),
    [
        ("singapore", "wan2.1-kf2v-plus", True),
        ("singapore", "wanx2.1-kf2v-plus", False),
        ("beijing", "wanx2.1-kf2v-plus", True),
        ("beijing", "wan2.1-kf2v-plus", False),
        ("singapore", "wan9-kf2v", False),
    ],
)
async def test_region_model_names(session: aiohttp.ClientSession, region: str, model: str,
                                  known: bool) -> None:
    """Each region knows its own spelling of a model; others are "Model not exist."."""
    async with run_simulator(SimConfig(region=region, clock=ManualClock())) as sim:
        status, body = await post(session, sim, kf2v(model, resolution="720P"))
    assert (status == 200) is known
    if not known:
        assert (body["code"], body["message"]) == ("InvalidParameter", "Model not exist.")


async def test_parameter_checks_use_the_catalog(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """An option the model lacks is refused, naming the option."""
    status, body = await post(session, sim, kf2v(resolution="4K"))
    assert (status, body["code"]) == (400, "InvalidParameter") and "resolution" in body["message"]


async def test_long_prompt_is_cut_not_refused(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """Like the provider, an over-long prompt is truncated to the model's limit."""
    body = kf2v()
    body["input"]["prompt"] = "x" * 900
    answer = await outcome(session, sim, body)
    assert answer["output"]["orig_prompt"] == "x" * 800


async def test_oss_url_needs_the_resolve_header(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """oss:// inputs without X-DashScope-OssResourceResolve are a 400."""
    body = kf2v()
    body["input"]["first_frame_url"] = "oss://dashscope-instant/x/a.png"
    status, answer = await post(session, sim, body)
    assert (status, answer["code"]) == (400, "InvalidParameter") and "oss://" in answer["message"]


# --- input media -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (make_image(mode="RGBA"), "alpha"),
        (make_image((100, 100)), "100x100 px"),
        (make_image(fmt="GIF", mode="P"), "format gif"),
        (b"not an image at all", "not an image"),
    ],
)
async def test_bad_images_fail_the_task(sim: Simulator, session: aiohttp.ClientSession,
                                        image: bytes, words: str) -> None:
    """Accepted first, then FAILED InvalidParameter saying what is wrong."""
    body = kf2v()
    body["input"]["last_frame_url"] = sim.add_file("bad", image)
    out = (await outcome(session, sim, body))["output"]
    assert (out["task_status"], out["code"]) == ("FAILED", "InvalidParameter")
    assert out["message"].startswith("last_frame_url:") and words in out["message"]


async def test_data_url_only_where_documented(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """wan2.1-kf2v-plus takes links only: a data: URL fails the task."""
    out = (await outcome(session, sim, kf2v("wan2.1-kf2v-plus")))["output"]
    assert out["task_status"] == "FAILED" and "base64" in out["message"]


async def test_missing_link_fails_the_task(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """A 404 input link is reported with its HTTP status."""
    body = kf2v()
    body["input"]["first_frame_url"] = f"{sim.root_url}/files/missing.png"
    out = (await outcome(session, sim, body))["output"]
    assert "HTTP 404" in out["message"]


async def test_i2v_with_audio_and_usage(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """wan2.5 i2v with a WAV: video_duration follows `duration`, SR the default 1080P."""
    media = {"img_url": IMAGE, "audio_url": sim.add_file("a.wav", make_wav(4.0), "audio/wav")}
    body = {"model": "wan2.5-i2v-preview", "input": media, "parameters": {"duration": 10}}
    answer = await outcome(session, sim, body, I2V_PATH)
    assert answer["output"]["task_status"] == "SUCCEEDED", answer
    assert answer["usage"] == {"video_duration": 10, "video_count": 1, "SR": 1080}
    assert "orig_prompt" not in answer["output"]


async def test_reference_images_and_ratio_usage(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """VACE with three linked references succeeds; a 2.1 model reports video_ratio."""
    link = sim.add_file("ref.png", make_image())
    body = {"model": "wan2.1-vace-plus",
            "input": {"function": "image_reference", "prompt": "a dance",
                      "ref_images_url": [link, link, link]},
            "parameters": {"obj_or_bg": ["obj", "obj", "bg"], "prompt_extend": False}}
    answer = await outcome(session, sim, body, I2V_PATH)
    assert answer["usage"] == {"video_duration": 5, "video_count": 1, "video_ratio": "standard"}
    assert "actual_prompt" not in answer["output"]


async def test_reference_needs_its_function(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """VACE without input.function=image_reference is a 400."""
    body = {"model": "wan2.1-vace-plus", "input": {"prompt": "p", "ref_images_url": [IMAGE]}}
    status, answer = await post(session, sim, body, I2V_PATH)
    assert status == 400 and "function" in answer["message"]


async def test_animate_video_limits(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """A reference video shorter than 2 s fails the animate task."""
    media = {"image_url": sim.add_file("p.png", make_image((400, 600))),
             "video_url": sim.add_file("v.mp4", make_mp4(256, 256, seconds=1.0))}
    body = {"model": "wan2.2-animate-move", "input": media, "parameters": {"mode": "wan-pro"}}
    out = (await outcome(session, sim, body))["output"]
    assert out["task_status"] == "FAILED" and "lasts 1.0 s" in out["message"]


# --- task life, list, cancel -------------------------------------------------------------------


async def test_times_are_utc_plus_8(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """Times are `YYYY-MM-DD HH:mm:ss.SSS` in UTC+8: the clock starts at 08:53:20 UTC."""
    out = (await outcome(session, sim, kf2v()))["output"]
    assert out["submit_time"] == "2025-10-09 16:53:20.000"
    assert out["scheduled_time"] == "2025-10-09 16:53:30.000"
    assert out["end_time"] == "2025-10-09 16:54:30.000"


async def test_durations_drawn_per_model(session: aiohttp.ClientSession) -> None:
    """A callable running time is asked with the model name."""
    seen: list[str] = []

    def running(model: str) -> float:
        seen.append(model)
        return 5.0

    async with run_simulator(SimConfig(clock=ManualClock(), pending_s=0, running_s=running)) as sim:
        await post(session, sim, kf2v())
        await sim.settle()
        sim.advance(5)
        task = next(iter(sim.tasks.values()))
        assert task.status(sim.now(), 86_400) == "SUCCEEDED" and seen == ["wan2.2-kf2v-flash"]


async def test_unknown_task_is_unknown(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """A task id never seen answers 200 with UNKNOWN, like an expired one."""
    status, body = await query(session, sim, "/tasks/no-such-task")
    assert (status, body["output"]["task_status"]) == (200, "UNKNOWN")


@pytest.mark.parametrize("params", ["page_size=101", "page_no=0", "start_time=2025-01-01"])
async def test_list_rejects_bad_params(sim: Simulator, session: aiohttp.ClientSession,
                                       params: str) -> None:
    """page_size above 100, page_no below 1 and malformed times are 400s."""
    status, body = await query(session, sim, f"/tasks?{params}")
    assert (status, body["code"]) == (400, "InvalidParameter")


async def test_list_answer_shape(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """The list answer has data, total, total_page, page_no and page_size."""
    for _ in range(3):
        await post(session, sim, kf2v())
    _, body = await query(session, sim, "/tasks?page_size=2&page_no=2")
    assert (body["total"], body["total_page"], body["page_no"], body["page_size"]) == (3, 2, 2, 2)
    assert len(body["data"]) == 1 and body["data"][0]["status"] == "PENDING"


async def test_cancel_unknown_task(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """Canceling a task that is not PENDING (or does not exist) is a 400."""
    async with session.post(sim.base_url + "/tasks/none/cancel", headers=headers(sim)) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == "UnsupportedOperation"


# --- results, uploads --------------------------------------------------------------------------


async def test_result_is_padded_h264(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """The video is real H.264 MP4, padded with a free box to exactly result_bytes."""
    sim.config.result_bytes = 50_000
    url = (await outcome(session, sim, kf2v()))["output"]["video_url"]
    async with session.get(url) as resp:
        data = await resp.read()
    assert len(data) == 50_000 and b"free" in data
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert list(container.decode(video=0))


async def test_upload_rejects_bad_signature(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """A form whose signature does not match its policy is refused with OSS's XML."""
    _, answer = await query(session, sim, "/uploads?action=getPolicy&model=wan2.2-kf2v-flash")
    policy = answer["data"]
    form = aiohttp.FormData()
    for name, value in [("OSSAccessKeyId", policy["oss_access_key_id"]), ("Signature", "bad"),
                        ("policy", policy["policy"]), ("key", policy["upload_dir"] + "/a.png")]:
        form.add_field(name, value)
    form.add_field("file", b"x", filename="a.png")
    async with session.post(policy["upload_host"], data=form) as resp:
        assert resp.status == 403 and "<Code>SignatureDoesNotMatch</Code>" in await resp.text()


async def test_policy_checks_model(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """getPolicy for a model the region does not know is "Model not exist."."""
    status, body = await query(session, sim, "/uploads?action=getPolicy&model=nope")
    assert (status, body["message"]) == (400, "Model not exist.")


# --- knobs, log, clock, CLI --------------------------------------------------------------------


async def test_fault_applies_n_times_then_clears(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """`fail(route, times=2)` answers twice with the error, then normally."""
    sim.config.fail("*", times=2, status=503)
    statuses = [(await query(session, sim, "/tasks/x"))[0] for _ in range(3)]
    assert statuses == [503, 503, 200] and not sim.config.faults


async def test_request_log_hides_the_key(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """The log has method, path, route, body and status, and no Authorization header."""
    await post(session, sim, kf2v())
    entry = sim.requests[-1]
    assert (entry.method, entry.route, entry.status) == ("POST", "create", 200)
    assert entry.body["model"] == "wan2.2-kf2v-flash"
    assert not any(k.lower() == "authorization" for k in entry.headers)


async def test_default_fixture_runs_fast(session: aiohttp.ClientSession) -> None:
    """With the shared settings (x1000) a task finishes after a simulated minute."""
    async with run_simulator(SimConfig(time_scale=1000.0)) as sim:
        _, created = await post(session, sim, kf2v())
        await sim.settle()
        sim.advance(120)
        _, answer = await query(session, sim, f"/tasks/{created['output']['task_id']}")
    assert answer["output"]["task_status"] == "SUCCEEDED"


def test_banner_tells_newcomers_what_to_set() -> None:
    """The start-up text gives both settings the bot needs."""
    sim = Simulator(SimConfig())
    sim.port = 8765
    text = banner(sim)
    assert "DASHSCOPE_BASE_URL=http://127.0.0.1:8765/api/v1" in text
    assert f"DASHSCOPE_API_KEY={DEFAULT_KEY}" in text


def test_catalog_models_all_have_an_endpoint_the_sim_serves() -> None:
    """Every catalog model sits on one of the two create endpoints."""
    assert {m.endpoint for m in catalog.MODELS.values()} == {KF2V_PATH[1:], I2V_PATH[1:]}

"""The four slash commands through discord.py: acknowledgement, option parsing, every
validation message (with nothing sent to the provider), and errors."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

import pytest

from bot.engine import JobState
from bot.provider.catalog import MiB
from bot.sim.media import make_mp4, make_wav
from tests.discord_stack import Stack, image, png, reply
from tests.fakediscord import EPHEMERAL, FakeUpload

MESSAGES = r"^/channels/\d+/messages$"


def _field(message: Any, name: str) -> str:
    return next(f["value"] for f in message.embeds[0]["fields"] if f["name"] == name)


# --------------------------------------------------------------------------- acknowledgement


async def test_defers_before_downloading_anything(wan: Stack) -> None:
    """The ephemeral defer arrives while the input link is still being served."""
    wan.media.gate.clear()  # the media server holds every answer
    url = wan.media.add("first.png", png())
    record = await wan.fake.slash("kf2v", {"first_frame_url": url, "last_frame_url": url})
    callback = await record.responded()
    assert callback.accepted and callback.type == 5 and callback.latency_s < 3.0
    assert callback.data["flags"] & EPHEMERAL
    await asyncio.wait_for(wan.media.asked.wait(), 5)  # the download has started
    assert list(wan.sim.requests) == [] and record.followups == []
    wan.media.gate.set()
    assert (await reply(record)).content.startswith("Queued as job `")


# --------------------------------------------------------------------------- option parsing


async def test_kf2v_options_reach_the_provider(wan: Stack) -> None:
    """Every /kf2v option lands in the job and in the provider's request body."""
    record = await wan.fake.slash(
        "kf2v",
        {"prompt": "a cat turns", "negative_prompt": "blur", "model": "wan2.2-kf2v-flash",
         "resolution": "480P", "prompt_extend": False, "watermark": True, "seed": 42},
        attachments={"first_frame": image("a.png"), "last_frame": image("b.png")},
    )
    assert (await reply(record)).ephemeral
    job = await wan.wait_state(JobState.PENDING)
    assert job.options == {"resolution": "480P", "prompt_extend": False, "watermark": True,
                           "seed": 42}
    [create] = wan.creates()
    assert create.body["model"] == "wan2.2-kf2v-flash"
    assert create.body["parameters"] == job.options
    assert create.body["input"]["prompt"] == "a cat turns"
    assert create.body["input"]["negative_prompt"] == "blur"
    assert {"first_frame_url", "last_frame_url"} <= set(create.body["input"])
    assert job.display.inputs == {"first_frame": "a.png", "last_frame": "b.png"}


async def test_i2v_takes_audio_and_a_numeric_duration(wan: Stack) -> None:
    """/i2v on wan2.5: a WAV attachment, a link image, duration "10" becomes 10."""
    url = wan.media.add("start.png", png())
    record = await wan.fake.slash(
        "i2v", {"image_url": url, "model": "wan2.5-i2v-preview", "duration": "10",
                "resolution": "720P", "prompt": "waves"},
        attachments={"audio": FakeUpload("sea.wav", make_wav(4.0), "audio/x-wav")},
    )
    await reply(record)
    job = await wan.wait_state(JobState.PENDING)
    [create] = wan.creates()
    assert create.body["parameters"]["duration"] == 10
    assert create.body["parameters"]["resolution"] == "720P"
    assert {"img_url", "audio_url"} <= set(create.body["input"])
    assert job.expected_seconds == 10


async def test_animate_takes_a_video_link_mode_and_model(wan: Stack) -> None:
    """/animate: image attachment, video link, wan-pro on animate-move."""
    video = wan.media.add("moves.mp4", make_mp4(320, 240, seconds=2.5), "video/mp4")
    record = await wan.fake.slash(
        "animate", {"video_url": video, "mode": "wan-pro", "model": "wan2.2-animate-move"},
        attachments={"image": image("person.png", (400, 600))},
    )
    await reply(record)
    await wan.wait_state(JobState.PENDING)
    [create] = wan.creates()
    assert create.body["model"] == "wan2.2-animate-move"
    assert create.body["parameters"]["mode"] == "wan-pro"
    assert {"image_url", "video_url"} <= set(create.body["input"])


async def test_reference_takes_three_images_with_roles(wan: Stack) -> None:
    """/reference: three attachments in order, roles split, size chosen."""
    record = await wan.fake.slash(
        "reference", {"prompt": "two friends in a park", "roles": "obj, obj, bg",
                      "size": "960*960"},
        attachments={f"image{n}": image(f"r{n}.png") for n in (1, 2, 3)},
    )
    await reply(record)
    await wan.wait_state(JobState.PENDING)
    [create] = wan.creates()
    assert len(create.body["input"]["ref_images_url"]) == 3
    assert create.body["input"]["function"] == "image_reference"
    assert create.body["parameters"]["obj_or_bg"] == ["obj", "obj", "bg"]
    assert create.body["parameters"]["size"] == "960*960"


# --------------------------------------------------------------------------- validation

Case = Callable[[Stack], tuple[str, dict[str, Any], dict[str, FakeUpload]]]
FRAMES = {"first_frame": image("a.png"), "last_frame": image("b.png")}

# Case name -> (the command, the answer). Cases in FETCHING get that far only after other inputs
# started downloading; all others are refused before the bot fetches anything.
VALIDATION: dict[str, tuple[Case, str]] = {
    "both a file and a link": (
        lambda s: ("kf2v", {"first_frame_url": s.media.add("x.png", png())}, FRAMES),
        "**first_frame**: give either first_frame or first_frame_url, not both.",
    ),
    "neither a file nor a link": (
        lambda s: ("kf2v", {}, {"last_frame": image()}),
        "**first_frame**: attach a file as first_frame or give a link as first_frame_url.",
    ),
    "wrong declared content type": (
        lambda s: ("kf2v", {}, {**FRAMES, "first_frame": FakeUpload("notes.pdf", b"%PDF-1.4",
                                                                    "application/pdf")}),
        "**first_frame**: notes.pdf is declared as application/pdf; this takes an image "
        "(JPEG, PNG, BMP or WEBP).",
    ),
    "wrong declared type for audio": (
        lambda s: ("i2v", {"model": "wan2.5-i2v-preview"},
                   {"image": image(), "audio": FakeUpload("clip.mp4", b"....", "video/mp4")}),
        "**audio**: clip.mp4 is declared as video/mp4; this takes audio (WAV or MP3).",
    ),
    "too large by declared size": (
        lambda s: ("kf2v", {}, {**FRAMES, "last_frame": image(declared_size=50 * MiB)}),
        "**last_frame**: the file is 50 MB, over the 20 MB limit.",
    ),
    "bad pixel size": (
        lambda s: ("kf2v", {}, {**FRAMES, "first_frame": image(size=(100, 100))}),
        "**first_frame**: the image is 100×100 px; this model needs each side between 360 and "
        "2000 px.",
    ),
    "prompt too long": (
        lambda s: ("kf2v", {"prompt": "x" * 801}, FRAMES),
        "**prompt**: is 801 characters; the limit is 800.",
    ),
    "resolution the model lacks": (
        lambda s: ("i2v", {"model": "wan2.2-i2v-plus", "resolution": "720P"},
                   {"image": image()}),
        "**resolution**: wan2.2-i2v-plus supports 480P, 1080P (got 720P).",
    ),
    "duration the model lacks": (
        lambda s: ("i2v", {"model": "wan2.2-i2v-flash", "duration": "10"}, {"image": image()}),
        "**duration**: wan2.2-i2v-flash supports 5 (got 10).",
    ),
    "audio on a model without sound": (
        lambda s: ("i2v", {"model": "wan2.2-i2v-flash"},
                   {"image": image(), "audio": FakeUpload("a.wav", make_wav(4), "audio/x-wav")}),
        "**audio**: wan2.2-i2v-flash does not take this input.",
    ),
    "roles count mismatch": (
        lambda s: ("reference", {"prompt": "p", "roles": "obj,bg"}, {"image1": image()}),
        "**roles**: give one role per image (1), each obj or bg.",
    ),
    "images both attached and linked": (
        lambda s: ("reference", {"prompt": "p", "image_urls": s.media.add("r.png", png())},
                   {"image1": image()}),
        "**image_urls**: attach images or give image_urls, not both.",
    ),
    "link to a private address": (
        lambda s: ("kf2v", {"first_frame_url": "http://10.0.0.7/a.png"},
                   {"last_frame": image()}),
        "**first_frame**: that link points to a private network address, which the bot does "
        "not fetch.",
    ),
}


FETCHING = {"too large by declared size", "bad pixel size", "link to a private address"}


@pytest.mark.parametrize("case", list(VALIDATION), ids=list(VALIDATION))
async def test_validation_message_and_nothing_submitted(wan: Stack, case: str) -> None:
    """A short ephemeral answer names the option and the rule; no task is created, and
    checks that need no download run before any."""
    make, expected = VALIDATION[case]
    name, values, files = make(wan)
    record = await wan.fake.slash(name, values, attachments=files)
    answer = await reply(record)
    assert answer.ephemeral
    assert answer.content == f"{expected}\nNothing was submitted."
    assert wan.creates() == []
    if case not in FETCHING:
        assert list(wan.sim.requests) == []
        assert wan.fake.requests_to("GET", r"^/attachments/") == [] and wan.media.served == []
    assert await wan.running.store.jobs() == []
    assert wan.fake.messages[wan.channel_id] == []


async def test_declared_type_is_refused_before_downloading(wan: Stack) -> None:
    """A file declared as the wrong type is never fetched from Discord's CDN."""
    bad = FakeUpload("movie.png", png(), "video/mp4")
    record = await wan.fake.slash("kf2v", {}, attachments={**FRAMES, "first_frame": bad})
    assert "declared as video/mp4" in (await reply(record)).content
    assert wan.fake.requests_to("GET", r"^/attachments/") == []


# --------------------------------------------------------------------------- errors


async def test_provider_failure_shows_its_human_message_and_code(wan: Stack) -> None:
    """A task the provider's moderation fails ends with the human text and the code."""
    record = await wan.fake.slash("kf2v", {"prompt": "a sim-blocked scene"}, attachments=FRAMES)
    await reply(record)
    job = await wan.wait_state(JobState.FAILED)
    assert job.error_code == "DataInspectionFailed"
    message = await wan.fake.wait_for_edit(
        wan.channel_id, lambda m: "[DataInspectionFailed]" in str(m.embeds))
    assert _field(message, "Status") == (
        "Failed: The provider's content check rejected the prompt or media. "
        "(Input data may contain inappropriate content.) [DataInspectionFailed]")
    assert wan.deliveries() == []


async def test_unexpected_error_after_queueing_apologises_with_the_job_id(
    wan: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Discord refusing the progress message: the job is stopped, the apology names it."""
    wan.fake.fail_next("POST", MESSAGES, status=400, code=50035, message="Invalid Form Body")
    record = await wan.fake.slash("kf2v", {"prompt": "a cat"}, attachments=FRAMES)
    answer = await reply(record)
    job = await wan.wait_state(JobState.CANCELED)
    assert answer.ephemeral and answer.content.startswith("Sorry, something went wrong")
    assert f"job `{job.id}` was stopped" in answer.content
    logged = [r for r in caplog.records if r.exc_info and job.id in r.getMessage()]
    assert logged and "Traceback" in caplog.text


async def test_unexpected_error_before_queueing_apologises_with_a_reference(
    wan: Stack, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug while checking: an apology with the interaction id; the traceback is logged."""
    async def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sys.modules["cogs.generate"], "build_request", broken)
    with caplog.at_level(logging.ERROR):
        record = await wan.fake.slash("kf2v", {}, attachments=FRAMES)
        answer = await reply(record)
    assert answer.ephemeral and f"`{record.id}`" in answer.content
    assert "nothing was submitted" in answer.content
    assert "RuntimeError: a bug" in caplog.text
    assert list(wan.sim.requests) == []

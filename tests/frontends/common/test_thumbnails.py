"""The progress message's picture: the first input image, only from an address the chat
service may fetch and that gives nothing away."""

from __future__ import annotations

import pytest

from bot.engine import Job, JobState, JobUpdate
from bot.frontends.common.thumbnails import is_public_url, thumbnail_url
from bot.frontends.discord.job_messages import progress_embed
from bot.frontends.slack.blocks import job_blocks

PUBLIC = "https://cdn.discordapp.com/attachments/1/2/cat.png?ex=1&hm=abc"


def kf2v(first: str, last: str = "https://example.com/b.png") -> Job:
    return Job(id="j1", state=JobState.RUNNING, created_at=0.0, platform="discord",
               team_id="t", channel_id="c", user_id="u", command="kf2v",
               model="wan2.2-kf2v-flash", media={"first_frame_url": first, "last_frame_url": last})


@pytest.mark.parametrize("url", [PUBLIC, "http://example.com/a.jpg", "https://8.8.8.8/a.png"])
def test_public_addresses_are_shown(url):
    assert is_public_url(url)


@pytest.mark.parametrize("url", [
    "oss://dashscope-instant/abc/2026-01-01/x/cat.png",  # the provider's upload
    "data:image/png;base64,iVBORw0KGgo=",
    "http://127.0.0.1:8080/files/a.png", "http://10.0.0.5/a.png", "http://[::1]/a.png",
    "http://192.168.1.2/a.png", "http://localhost/a.png", "http://nas.local/a.png",
    "http://intranet/a.png", "https://files.slack.com/files-pri/T1-F1/cat.png",
    "https://user:secret@example.com/a.png", "ftp://example.com/a.png", "https://[bad/a.png",
])
def test_private_or_unreadable_addresses_are_never_shown(url):
    assert not is_public_url(url)


def test_the_first_image_input_is_the_thumbnail():
    assert thumbnail_url(kf2v(PUBLIC)) == PUBLIC


def test_a_private_first_image_shows_none_not_the_next_one():
    """The first input is the one pictured; if it cannot be shown, nothing is."""
    assert thumbnail_url(kf2v("oss://x/first.png", PUBLIC)) is None


def test_discord_progress_embed_carries_the_thumbnail():
    update = JobUpdate(kf2v(PUBLIC), position=None, elapsed_s=1.0, eta_s=None)
    assert progress_embed(update).thumbnail.url == PUBLIC
    private = JobUpdate(kf2v("http://127.0.0.1/a.png"), position=None, elapsed_s=1.0, eta_s=None)
    assert progress_embed(private).thumbnail.url is None


def test_slack_progress_blocks_carry_the_image_accessory_unless_told_not_to():
    update = JobUpdate(kf2v(PUBLIC), position=None, elapsed_s=1.0, eta_s=None)
    accessory = job_blocks(update, [])[0]["accessory"]
    assert accessory == {"type": "image", "image_url": PUBLIC, "alt_text": "the first input"}
    assert "accessory" not in job_blocks(update, [], picture=False)[0]

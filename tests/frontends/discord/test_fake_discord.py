"""The fake Discord drives a real discord.py ``commands.Bot`` end to end."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakediscord import (
    EPHEMERAL,
    FakeDiscord,
    FakeUpload,
    connected_bot,
    run_fake_discord,
)

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
MESSAGES = r"^/channels/\d+/messages$"


# --------------------------------------------------------------------------- the bot under test


class CancelButton(discord.ui.DynamicItem[discord.ui.Button], template=r"job:cancel:(?P<id>\d+)"):
    """A button that survives restarts: its state lives in the custom_id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(discord.ui.Button(label="Cancel", custom_id=f"job:cancel:{job_id}"))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> CancelButton:
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        text = f"job {self.job_id} cancelled by {interaction.user.name}"
        await interaction.response.edit_message(content=text, view=None)


class HelpView(discord.ui.View):
    """A persistent view registered with ``add_view``."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Help", custom_id="wanbot:help")
    async def show_help(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_message("help text", ephemeral=True)


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    text: discord.ui.TextInput = discord.ui.TextInput(label="Feedback", custom_id="feedback:text")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"thanks {interaction.user.name}: {self.text}")


@app_commands.command(description="Defer, then follow up.")
async def ping(interaction: discord.Interaction) -> None:
    await interaction.response.defer(thinking=True)
    await interaction.followup.send("pong")


@app_commands.command(description="Send the attachment back, reversed.")
async def upload(interaction: discord.Interaction, image: discord.Attachment) -> None:
    data = await image.read()
    reply = discord.File(io.BytesIO(data[::-1]), filename="reversed.bin")
    await interaction.response.send_message(f"{image.filename}: {len(data)} bytes", file=reply)


@app_commands.command(description="Start a job with a cancel button.")
async def job(interaction: discord.Interaction, job_id: int) -> None:
    view = HelpView()
    view.add_item(CancelButton(job_id))
    await interaction.response.send_message(f"job {job_id} running", view=view)


@app_commands.command(description="Open the feedback form.")
async def feedback(interaction: discord.Interaction) -> None:
    await interaction.response.send_modal(FeedbackModal(custom_id="feedback"))


@app_commands.command(description="Finish through the channel if the token is gone.")
async def late(interaction: discord.Interaction) -> None:
    await interaction.response.defer()
    try:
        await interaction.followup.send("done")
    except discord.HTTPException as exc:
        assert isinstance(interaction.channel, discord.TextChannel)
        message = await interaction.channel.send(f"token refused: {exc.status}")
        await message.edit(content=f"done via channel after {exc.status} {exc.code}")


@app_commands.command(description="Moderators only.")
@app_commands.checks.has_permissions(manage_guild=True)
async def admin(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("admin ok")


@admin.error
async def admin_denied(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    await interaction.response.send_message(f"denied: {type(error).__name__}", ephemeral=True)


class TinyBot(commands.Bot):
    def __init__(self, guild_id: int) -> None:
        super().__init__(command_prefix="!", intents=discord.Intents.default())
        self.guild_id = guild_id

    async def setup_hook(self) -> None:
        guild = discord.Object(self.guild_id)
        for command in (ping, upload, job, feedback, late, admin):
            self.tree.add_command(command, guild=guild)
        self.add_dynamic_items(CancelButton)
        self.add_view(HelpView())
        await self.tree.sync(guild=guild)


def bot_factory(fake: FakeDiscord) -> TinyBot:
    return TinyBot(fake.guild.id)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with run_fake_discord() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[TinyBot]:
    async with connected_bot(fake, lambda: bot_factory(fake)) as running:
        yield running


def general_of(fake: FakeDiscord) -> int:
    return fake.channel("general").id


# --------------------------------------------------------------------------- tests


async def test_ready_handshake_builds_the_guild(fake: FakeDiscord, bot: TinyBot) -> None:
    """IDENTIFY gets READY and GUILD_CREATE: user, guild, channel, roles, members."""
    guild = bot.get_guild(fake.guild.id)
    assert bot.user is not None and bot.user.id == fake.bot_user.id
    assert guild is not None and guild.name == "Test Guild"
    assert [c.name for c in guild.text_channels] == ["general"]
    assert guild.member_count == 4 and "Moderators" in [r.name for r in guild.roles]
    session = fake.gateways[-1]
    assert session.intents == bot.intents.value and session.heartbeats >= 1
    assert fake.unhandled == []


async def test_command_sync_is_recorded(fake: FakeDiscord, bot: TinyBot) -> None:
    """setup_hook's guild sync is one PUT; fetching returns the stored commands."""
    assert [sync.guild_id for sync in fake.command_syncs] == [fake.guild.id]
    assert sorted(fake.command_syncs[0].names) == ["admin", "feedback", "job", "late", "ping",
                                                   "upload"]
    fetched = await bot.tree.fetch_commands(guild=discord.Object(fake.guild.id))
    assert {c.name for c in fetched} == set(fake.command_syncs[0].names)


async def test_slash_command_is_answered_within_the_deadline(
    fake: FakeDiscord, bot: TinyBot
) -> None:
    """A typed integer option reaches the command; the reply lands in the channel."""
    record = await fake.slash("job", {"job_id": 7})
    callback = await record.responded()
    assert callback.accepted and callback.type == 4 and callback.latency_s < 3
    message = await fake.wait_for_message(general_of(fake))
    assert message.content == "job 7 running"
    assert set(message.custom_ids) == {"wanbot:help", "job:cancel:7"}


async def test_defer_then_followup_edits_the_thinking_message(
    fake: FakeDiscord, bot: TinyBot
) -> None:
    """The first followup after a defer replaces the "thinking" message."""
    record = await fake.slash("ping")
    assert (await record.responded()).type == 5
    [followup] = await record.wait_followups(1)
    assert record.original is followup and followup.content == "pong"
    assert not followup.loading
    assert [m.content for m in fake.messages[general_of(fake)]] == ["pong"]


async def test_expired_token_refused_but_bot_token_works(fake: FakeDiscord, bot: TinyBot) -> None:
    """A backdated id makes the webhook refuse the token (50027); channel routes still work."""
    old = discord.utils.utcnow() - timedelta(minutes=16)
    record = await fake.slash("late", id_time=old)
    edited = await fake.wait_for_edit(
        general_of(fake), lambda m: m.content.startswith("done via channel")
    )
    assert edited.content == "done via channel after 401 50027"
    assert record.followups == [] and record.token_expired()
    assert [r.status for r in fake.requests_to("POST", r"^/webhooks/")] == [401]


async def test_attachment_option_and_uploaded_file(fake: FakeDiscord, bot: TinyBot) -> None:
    """The bot downloads the option's file and uploads a reply whose bytes are stored."""
    upload_spec = FakeUpload("cat.png", PNG_BYTES, content_type="image/png", width=1, height=1)
    record = await fake.slash("upload", attachments={"image": upload_spec})
    assert (await record.responded()).accepted
    assert record.original is not None
    assert record.original.content == f"cat.png: {len(PNG_BYTES)} bytes"
    [stored] = record.original.files
    assert (stored.filename, stored.data) == ("reversed.bin", PNG_BYTES[::-1])
    async with aiohttp.ClientSession() as session, session.get(stored.url) as response:
        assert await response.read() == PNG_BYTES[::-1]


async def test_upload_over_channel_limit_gets_413(fake: FakeDiscord, bot: TinyBot) -> None:
    """Files summing over the channel's limit are refused with 40005; a fresh File then works."""
    fake.channel("general").upload_limit = 1024
    channel = bot.get_channel(general_of(fake))
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send(files=[discord.File(io.BytesIO(b"x" * 600), filename=f"{n}.bin")
                                  for n in range(2)])
    assert (refused.value.status, refused.value.code) == (413, 40005)
    assert fake.messages[channel.id] == []
    sent = await channel.send(file=discord.File(io.BytesIO(b"y" * 512), filename="small.bin"))
    assert fake.messages[channel.id][0].files[0].data == b"y" * 512
    assert sent.attachments[0].size == 512


async def test_rate_limit_is_retried_by_discord_py(fake: FakeDiscord, bot: TinyBot) -> None:
    """A 429 with rate-limit headers and Via is waited out and retried."""
    fake.fail_next("POST", MESSAGES, status=429, retry_after=0.05)
    channel = bot.get_channel(general_of(fake))
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("hello")
    attempts = fake.requests_to("POST", MESSAGES)
    assert [r.status for r in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 0.05
    assert message.content == "hello" and len(fake.messages[channel.id]) == 1


async def test_button_clicks_reach_dynamic_and_persistent_items(
    fake: FakeDiscord, bot: TinyBot
) -> None:
    """A DynamicItem edits its message; a persistent view's button replies ephemerally."""
    await (await fake.slash("job", {"job_id": 7})).responded()
    message = await fake.wait_for_message(general_of(fake))
    help_click = await fake.click("wanbot:help", message.id, user="carol")
    assert (await help_click.responded()).data["flags"] & EPHEMERAL
    assert help_click.original is not None and help_click.original.content == "help text"
    cancel = await fake.click("job:cancel:7", message.id, user="bob")
    assert (await cancel.responded()).type == 7
    assert message.content == "job 7 cancelled by bob" and message.components == []
    assert len(fake.messages[general_of(fake)]) == 1


async def test_modal_submit_reaches_on_submit(fake: FakeDiscord, bot: TinyBot) -> None:
    """The modal the bot opened comes back with the typed values."""
    opened = await (await fake.slash("feedback", user="carol")).responded()
    assert opened.type == 9 and opened.data["custom_id"] == "feedback"
    submitted = await fake.submit_modal("feedback", {"feedback:text": "lovely"})
    await submitted.responded()
    assert submitted.original is not None
    assert submitted.original.content == "thanks carol: lovely"


async def test_member_permissions_reach_app_command_checks(
    fake: FakeDiscord, bot: TinyBot
) -> None:
    """carol (Manage Guild) passes has_permissions; alice is denied."""
    denied = await fake.slash("admin", user="alice")
    allowed = await fake.slash("admin", user="carol")
    assert (await denied.responded()).data["content"] == "denied: MissingPermissions"
    assert (await allowed.responded()).data["content"] == "admin ok"


async def test_late_and_double_acknowledgements_are_refused(
    fake: FakeDiscord, bot: TinyBot
) -> None:
    """Past the ack deadline: 10062; a second callback: 40060, JSON typed exactly."""
    fake.ack_deadline_s = 0.0
    late_record = await fake.slash("job", {"job_id": 1})
    assert not (await late_record.responded()).accepted and late_record.callback is None
    fake.ack_deadline_s = 3.0
    record = await fake.slash("job", {"job_id": 2})
    await record.responded()
    url = f"{fake.api_base}/interactions/{record.id}/{record.token}/callback"
    again = {"type": 4, "data": {"content": "again"}}
    async with aiohttp.ClientSession() as session, session.post(url, json=again) as reply:
        assert reply.status == 400 and reply.headers["Content-Type"] == "application/json"
        assert (await reply.json())["code"] == 40060
    assert [r.status for r in fake.requests_to("POST", r"/callback$")] == [404, 200, 400]


async def test_dm_and_channel_history(fake: FakeDiscord, bot: TinyBot) -> None:
    """DMs open a channel; history pages newest first with before/after."""
    alice = await bot.fetch_user(fake.user("alice").id)
    await alice.send("hi alice")
    assert [m.content for m in fake.messages[fake.dm_channel("alice").id]] == ["hi alice"]
    channel = bot.get_channel(general_of(fake))
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("a")
    for text in ("b", "c"):
        await channel.send(text)
    assert [m.content async for m in channel.history(limit=2)] == ["c", "b"]
    newer = [m.content async for m in channel.history(after=first, oldest_first=True)]
    assert newer == ["b", "c"]


async def test_restart_keeps_state_and_dynamic_buttons(fake: FakeDiscord) -> None:
    """A new bot on the same fake re-identifies, re-syncs and handles old buttons."""
    async with connected_bot(fake, lambda: bot_factory(fake)):
        await (await fake.slash("job", {"job_id": 9})).responded()
        message = await fake.wait_for_message(general_of(fake))
    async with connected_bot(fake, lambda: bot_factory(fake)) as second:
        assert second.is_ready() and len(fake.gateways) == 2 and fake.gateways[0].closed
        click = await fake.click("job:cancel:9", message.id, user="alice")
        assert (await click.responded()).accepted
    assert message.content == "job 9 cancelled by alice"
    assert len(fake.command_syncs) == 2

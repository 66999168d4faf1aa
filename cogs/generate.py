"""/kf2v, /i2v, /animate, /reference: take inputs, check them, queue a job, show its progress.

Offered in servers; in direct messages only when DISCORD_ALLOW_DMS is on, and then counted in
the home server (DISCORD_DM_HOME_GUILD), as a member there, with its roles, limits and usage;
a DM job is private.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine import Display, JobRequest
from bot.errors import ApiError, InputError
from bot.frontends.common import teams
from bot.frontends.common.declared import check_inputs
from bot.frontends.common.defaults import with_defaults
from bot.frontends.common.intake import Ask, Owner, build_request, most_seconds, pick
from bot.frontends.common.options import option_names, parameters
from bot.frontends.common.teams import Claim, LimitError
from bot.frontends.common.texts import apology
from bot.frontends.discord.access import generate_refusal, team_of
from bot.frontends.discord.inputs import (
    accepts,
    attachment,
    choices,
    link,
    model_choices,
)
from bot.frontends.discord.job_messages import DMS_OFF, input_error_text, limit_text
from bot.provider import catalog
from bot.provider.catalog import Command

if TYPE_CHECKING:
    from bot.frontends.discord.client import WanBot

log = logging.getLogger(__name__)

Seed = app_commands.Range[int, 0, catalog.SEED_MAX]
MakeAsk = Callable[[], Ask]
COMMON = {
    "negative_prompt": "What to keep out of the video",
    "prompt_extend": "Let the provider rewrite the prompt (default on)",
    "watermark": "Add the provider's AI-generated mark",
    "seed": "Random seed, for reruns",
    "private": "Only you see the progress; the video comes to you by direct message",
}


class Generate(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        self.gate = bot.gate  # limits checked before inputs are fetched
        # Offered in servers only, unless DMs are allowed (then counted in the home server).
        allow = bot.settings.allow_dms
        for command in self.get_app_commands():
            command.guild_only = not allow
            command.allowed_contexts = app_commands.AppCommandContext(
                guild=True, dm_channel=allow, private_channel=False)

    @app_commands.command(description="A video that moves from a first frame to a last frame.")
    @app_commands.describe(
        first_frame=accepts(Command.KF2V, "first_frame_url", "The first frame"),
        first_frame_url="Or a link to the first frame",
        last_frame=accepts(Command.KF2V, "last_frame_url", "The last frame"),
        last_frame_url="Or a link to the last frame",
        prompt="What happens between the frames (up to 800 characters)",
        model="Which Wan model", resolution="Output resolution (affects cost)", **COMMON,
    )
    @app_commands.choices(model=model_choices(Command.KF2V),
                          resolution=choices(Command.KF2V, "resolution"))
    async def kf2v(
        self, interaction: discord.Interaction, first_frame: discord.Attachment | None = None,
        first_frame_url: str | None = None, last_frame: discord.Attachment | None = None,
        last_frame_url: str | None = None, prompt: str | None = None,
        negative_prompt: str | None = None, model: str | None = None,
        resolution: str | None = None, prompt_extend: bool | None = None,
        watermark: bool | None = None, seed: Seed | None = None, private: bool | None = None,
    ) -> None:
        await self.start(interaction, private, lambda: Ask(
            Command.KF2V, model, prompt, negative_prompt,
            parameters(resolution=resolution, prompt_extend=prompt_extend, watermark=watermark,
                    seed=seed),
            {"first_frame_url": pick("first_frame", attachment(first_frame),
                                     link(first_frame_url)),
             "last_frame_url": pick("last_frame", attachment(last_frame), link(last_frame_url))},
            option_names(Command.KF2V),
        ))

    @app_commands.command(description="A video from one image, with sound on wan2.5.")
    @app_commands.describe(
        image=accepts(Command.I2V, "img_url", "The first frame"), image_url="Or a link to it",
        prompt="What happens (up to 800 characters; 2000 on wan2.5)",
        audio=accepts(Command.I2V, "audio_url", "Audio to sync to, 3-30 s (wan2.5 only)"),
        audio_url="Or a link to it", model="Which Wan model",
        resolution="Output resolution (affects cost)", duration="Seconds of video (affects cost)",
        **COMMON,
    )
    @app_commands.choices(model=model_choices(Command.I2V),
                          resolution=choices(Command.I2V, "resolution"),
                          duration=choices(Command.I2V, "duration"))
    async def i2v(
        self, interaction: discord.Interaction, image: discord.Attachment | None = None,
        image_url: str | None = None, prompt: str | None = None,
        audio: discord.Attachment | None = None, audio_url: str | None = None,
        model: str | None = None, resolution: str | None = None, duration: str | None = None,
        negative_prompt: str | None = None, prompt_extend: bool | None = None,
        watermark: bool | None = None, seed: Seed | None = None, private: bool | None = None,
    ) -> None:
        await self.start(interaction, private, lambda: Ask(
            Command.I2V, model, prompt, negative_prompt,
            parameters(resolution=resolution, duration=duration, prompt_extend=prompt_extend,
                    watermark=watermark, seed=seed),
            {"img_url": pick("image", attachment(image), link(image_url)),
             "audio_url": pick("audio", attachment(audio), link(audio_url), required=False)},
            option_names(Command.I2V),
        ))

    @app_commands.command(description="Animate a person in an image with the moves of a video.")
    @app_commands.describe(
        image=accepts(Command.ANIMATE, "image_url", "The person"), image_url="Or a link to it",
        video=accepts(Command.ANIMATE, "video_url", "The moves to copy, 2-30 s"),
        video_url="Or a link to it",
        mode="wan-std is faster and cheaper; wan-pro looks better",
        model="mix puts the person into the video; move moves the image",
        watermark=COMMON["watermark"], private=COMMON["private"],
    )
    @app_commands.choices(mode=choices(Command.ANIMATE, "mode"),
                          model=model_choices(Command.ANIMATE))
    async def animate(
        self, interaction: discord.Interaction, image: discord.Attachment | None = None,
        image_url: str | None = None, video: discord.Attachment | None = None,
        video_url: str | None = None, mode: str | None = None, model: str | None = None,
        watermark: bool | None = None, private: bool | None = None,
    ) -> None:
        await self.start(interaction, private, lambda: Ask(
            Command.ANIMATE, model, None, None, parameters(mode=mode, watermark=watermark),
            {"image_url": pick("image", attachment(image), link(image_url)),
             "video_url": pick("video", attachment(video), link(video_url))},
            option_names(Command.ANIMATE),
        ))

    @app_commands.command(description="A video featuring subjects from 1-3 reference images.")
    @app_commands.describe(
        prompt="What the subjects do (required, up to 800 characters)",
        image1=accepts(Command.REFERENCE, "ref_images_url", "A reference image"),
        image2="Another reference image", image3="Another reference image",
        image_urls="Or up to 3 links, separated by spaces",
        roles="obj or bg for each image in order, e.g. obj,obj,bg (one bg at most)",
        size="Output size", **COMMON,
    )
    @app_commands.choices(size=choices(Command.REFERENCE, "size"))
    async def reference(
        self, interaction: discord.Interaction, prompt: str,
        image1: discord.Attachment | None = None, image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None, image_urls: str | None = None,
        roles: str | None = None, size: str | None = None, negative_prompt: str | None = None,
        prompt_extend: bool | None = None, watermark: bool | None = None,
        seed: Seed | None = None, private: bool | None = None,
    ) -> None:
        def ask() -> Ask:
            files = [attachment(a) for a in (image1, image2, image3) if a is not None]
            links = [link(u) for u in (image_urls or "").replace(",", " ").split()]
            if files and links:
                raise InputError("image_urls", "attach images or give image_urls, not both.")
            if not files and not links:
                raise InputError("image1", "attach 1-3 images or give image_urls.")
            role_list = [r.strip() for r in roles.split(",")] if roles else None
            return Ask(Command.REFERENCE, None, prompt, negative_prompt,
                       parameters(size=size, obj_or_bg=role_list, prompt_extend=prompt_extend,
                               watermark=watermark, seed=seed),
                       {"ref_images_url": [*files, *links]},
                       option_names(Command.REFERENCE))
        await self.start(interaction, private, ask)

    # --- the flow every command shares ---------------------------------------------------

    async def start(self, interaction: discord.Interaction, private: bool | None,
                     make_ask: MakeAsk) -> None:
        """Acknowledge at once; then check who may, what it may cost against the limits, the
        inputs (fetching them is the expensive part), and queue it and show its progress."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with self.bot.lifecycle.command_running():
            team_id = team_of(self.bot.settings, interaction)
            refusal = DMS_OFF if team_id is None else await generate_refusal(
                self.bot, self.bot.store, interaction, team_id)
            if team_id is None or refusal is not None:
                await interaction.followup.send(refusal or DMS_OFF, ephemeral=True)
                return
            owner = Owner("discord", team_id, str(interaction.channel_id),
                          str(interaction.user.id))
            # Only the person sees a DM: a job made there stays theirs (no /job, /queue or
            # gallery for others), like a private one.
            in_dm = interaction.guild_id is None
            asked = await self.checked_ask(interaction, owner, make_ask, bool(private) or in_dm)
            if asked is not None:
                await self.queue(interaction, owner, *asked)

    async def checked_ask(self, interaction: discord.Interaction, owner: Owner,
                          make_ask: MakeAsk, private: bool) -> tuple[Ask, float] | None:
        """The request as asked, with the team's defaults where the person gave none, past the
        checks that need no input fetched, and the most video-seconds it can make; None once
        the person was told what is wrong."""
        try:
            team = await teams.load(self.bot.store, owner.team_id)
            ask = dataclasses.replace(with_defaults(make_ask(), team), private=private,
                                      display=Display(upload_limit=interaction.filesize_limit))
            check_inputs(ask)
            return ask, most_seconds(ask)
        except InputError as exc:
            await interaction.followup.send(input_error_text(exc.option, exc.message),
                                            ephemeral=True)
            return None

    async def queue(self, interaction: discord.Interaction, owner: Owner, ask: Ask,
                    seconds: float) -> None:
        """Hold a place within the limits (refused before any download), then fetch and
        prepare the inputs and queue the job (where the limits are checked once more)."""
        claim = Claim(owner.team_id, owner.user_id, seconds)
        submitter = self.bot.submitter
        try:
            async with self.gate.hold(claim, self.bot.engine.clock.now()):
                request = await self.prepared(interaction, owner, ask)
                queued = None if request is None else await submitter.enqueue(interaction, request)
        except LimitError as exc:
            await interaction.followup.send(limit_text(exc.reason, exc.resets_at),
                                            ephemeral=True)
            return
        if queued is not None:  # in the store now, where the limits count it
            await submitter.publish(interaction, queued)

    async def prepared(self, interaction: discord.Interaction, owner: Owner,
                       ask: Ask) -> JobRequest | None:
        """The request with its inputs fetched and handed over; None once the person was told
        what is wrong with it."""
        try:
            return await build_request(ask, owner, self.bot.media_context(),
                                       self.bot.settings.region)
        except InputError as exc:
            text = input_error_text(exc.option, exc.message)
        except ApiError as exc:
            log.warning("input hand-over failed: %s", exc)
            text = f"{exc.user_message()}\nNothing was submitted."
        await interaction.followup.send(text, ephemeral=True)
        return None

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        """Anything unexpected before a job existed: an apology; the traceback to the log."""
        name = interaction.command.name if interaction.command else "?"
        log.error("/%s failed (reference %s)", name, interaction.id, exc_info=error)
        text = apology(str(interaction.id), job=False)
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Generate(bot))

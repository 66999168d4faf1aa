"""/kf2v, /i2v, /animate, /reference: take inputs, check them, queue a job, show its progress."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import catalog
from bot.catalog import Command
from bot.discord_render import allowed_mentions, progress_embed, queued_text
from bot.errors import InputError
from bot.intake import Ask, Owner, build_request, pick
from bot.media import MediaContext, MediaSource

if TYPE_CHECKING:
    from bot.discord_bot import WanBot

log = logging.getLogger(__name__)

Seed = app_commands.Range[int, 0, catalog.SEED_MAX]


def choices(command: Command, option: str) -> list[app_commands.Choice[str]]:
    """Every value any of the command's models allows for an option, in catalog order."""
    values: list[Any] = []
    for model in catalog.models_for(command):
        opt = model.options.get(option)
        for value in (opt.choices or ()) if opt else ():
            if value not in values:
                values.append(value)
    return [app_commands.Choice(name=str(v), value=str(v)) for v in values]


def model_choices(command: Command) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=m.name, value=m.name) for m in catalog.models_for(command)]


def attachment(item: discord.Attachment | None) -> MediaSource | None:
    if item is None:
        return None
    return MediaSource.attachment(item.url, size=item.size, filename=item.filename,
                                  content_type=item.content_type)


def link(url: str | None) -> MediaSource | None:
    return MediaSource.link(url.strip()) if url and url.strip() else None


def options(**values: Any) -> dict[str, Any]:
    """Slash-command values to catalog parameters (durations are numbers there)."""
    if values.get("duration") is not None:
        values["duration"] = int(values["duration"])
    return {k: v for k, v in values.items() if v is not None}


class Generate(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @property
    def media(self) -> MediaContext:
        return MediaContext.from_settings(self.bot.session, self.bot.settings,
                                          uploader=self.bot.engine.client.upload)

    @app_commands.command(description="A video that moves from a first frame to a last frame.")
    @app_commands.describe(
        first_frame="The first frame (JPEG, PNG, BMP or WEBP)",
        first_frame_url="Or a link to the first frame",
        last_frame="The last frame", last_frame_url="Or a link to the last frame",
        prompt="What happens between the frames (up to 800 characters)",
        negative_prompt="What to keep out of the video",
        model="Which Wan model", resolution="Output resolution (affects cost)",
        prompt_extend="Let the provider rewrite the prompt (default on)",
        watermark="Add the provider's AI-generated mark", seed="Random seed, for reruns",
    )
    @app_commands.choices(model=model_choices(Command.KF2V),
                          resolution=choices(Command.KF2V, "resolution"))
    async def kf2v(
        self, interaction: discord.Interaction, first_frame: discord.Attachment | None = None,
        first_frame_url: str | None = None, last_frame: discord.Attachment | None = None,
        last_frame_url: str | None = None, prompt: str | None = None,
        negative_prompt: str | None = None, model: str | None = None,
        resolution: str | None = None, prompt_extend: bool | None = None,
        watermark: bool | None = None, seed: Seed | None = None,
    ) -> None:
        await self.start(interaction, lambda: Ask(
            Command.KF2V, model, prompt, negative_prompt,
            options(resolution=resolution, prompt_extend=prompt_extend, watermark=watermark,
                    seed=seed),
            {"first_frame_url": pick("first_frame", attachment(first_frame),
                                     link(first_frame_url)),
             "last_frame_url": pick("last_frame", attachment(last_frame), link(last_frame_url))},
            {"first_frame_url": "first_frame", "last_frame_url": "last_frame"},
        ))

    @app_commands.command(description="A video from one image, with sound on wan2.5.")
    @app_commands.describe(
        image="The first frame (JPEG, PNG, BMP or WEBP)", image_url="Or a link to it",
        prompt="What happens (up to 800 characters; 2000 on wan2.5)",
        audio="A WAV or MP3 to sync to, 3-30 s (wan2.5 only)", audio_url="Or a link to it",
        model="Which Wan model", resolution="Output resolution (affects cost)",
        duration="Seconds of video (affects cost)", negative_prompt="What to keep out",
        prompt_extend="Let the provider rewrite the prompt (default on)",
        watermark="Add the provider's AI-generated mark", seed="Random seed, for reruns",
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
        watermark: bool | None = None, seed: Seed | None = None,
    ) -> None:
        await self.start(interaction, lambda: Ask(
            Command.I2V, model, prompt, negative_prompt,
            options(resolution=resolution, duration=duration, prompt_extend=prompt_extend,
                    watermark=watermark, seed=seed),
            {"img_url": pick("image", attachment(image), link(image_url)),
             "audio_url": pick("audio", attachment(audio), link(audio_url), required=False)},
            {"img_url": "image", "audio_url": "audio"},
        ))

    @app_commands.command(description="Animate a person in an image with the moves of a video.")
    @app_commands.describe(
        image="The person (JPEG, PNG, BMP or WEBP, up to 5 MB)", image_url="Or a link to it",
        video="The moves to copy (MP4, MOV or AVI, 2-30 s)", video_url="Or a link to it",
        mode="wan-std is faster and cheaper; wan-pro looks better",
        model="mix puts the person into the video; move moves the image",
        watermark="Add the provider's AI-generated mark",
    )
    @app_commands.choices(mode=choices(Command.ANIMATE, "mode"),
                          model=model_choices(Command.ANIMATE))
    async def animate(
        self, interaction: discord.Interaction, image: discord.Attachment | None = None,
        image_url: str | None = None, video: discord.Attachment | None = None,
        video_url: str | None = None, mode: str | None = None, model: str | None = None,
        watermark: bool | None = None,
    ) -> None:
        await self.start(interaction, lambda: Ask(
            Command.ANIMATE, model, None, None, options(mode=mode, watermark=watermark),
            {"image_url": pick("image", attachment(image), link(image_url)),
             "video_url": pick("video", attachment(video), link(video_url))},
            {"image_url": "image", "video_url": "video"},
        ))

    @app_commands.command(description="A video featuring subjects from 1-3 reference images.")
    @app_commands.describe(
        prompt="What the subjects do (required, up to 800 characters)",
        image1="A reference image", image2="Another", image3="Another",
        image_urls="Or up to 3 links, separated by spaces",
        roles="obj or bg for each image in order, e.g. obj,obj,bg (one bg at most)",
        size="Output size", negative_prompt="What to keep out",
        prompt_extend="Let the provider rewrite the prompt (default on)",
        watermark="Add the provider's AI-generated mark", seed="Random seed, for reruns",
    )
    @app_commands.choices(size=choices(Command.REFERENCE, "size"))
    async def reference(
        self, interaction: discord.Interaction, prompt: str,
        image1: discord.Attachment | None = None, image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None, image_urls: str | None = None,
        roles: str | None = None, size: str | None = None, negative_prompt: str | None = None,
        prompt_extend: bool | None = None, watermark: bool | None = None,
        seed: Seed | None = None,
    ) -> None:
        def ask() -> Ask:
            files = [attachment(a) for a in (image1, image2, image3) if a is not None]
            links = [link(u) for u in (image_urls or "").replace(",", " ").split()]
            if not files and not links:
                raise InputError("image1", "attach 1-3 images or give image_urls.")
            role_list = [r.strip() for r in roles.split(",")] if roles else None
            return Ask(Command.REFERENCE, None, prompt, negative_prompt,
                       options(size=size, obj_or_bg=role_list, prompt_extend=prompt_extend,
                               watermark=watermark, seed=seed),
                       {"ref_images_url": [*files, *links]}, {"ref_images_url": "image"})
        await self.start(interaction, ask)

    async def start(self, interaction: discord.Interaction, make_ask: Any) -> None:
        """Acknowledge at once, then check, queue and post the progress message."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        owner = Owner("discord", str(interaction.guild_id or 0), str(interaction.channel_id),
                      str(interaction.user.id))
        try:
            ask = make_ask()
            ask = Ask(**{**ask.__dict__, "display": {"upload_limit": interaction.filesize_limit}})
            request = await build_request(ask, owner, self.media, self.bot.settings.region)
        except InputError as exc:
            await interaction.followup.send(
                f"**{exc.option}**: {exc.message}\nNothing was submitted.", ephemeral=True)
            return
        update = await self.bot.engine.submit(request)
        await self.post_progress(interaction, update)

    async def post_progress(self, interaction: discord.Interaction, update: Any) -> None:
        job = update.job
        channel = self.bot.get_partial_messageable(int(job.channel_id))
        message = await channel.send(queued_text(job), embed=progress_embed(update),
                                     allowed_mentions=allowed_mentions(job))
        job = await self.bot.engine.set_progress_ref(
            job.id, {"channel_id": str(message.channel.id), "message_id": str(message.id)})
        if job is not None:
            await self.bot.progress.on_update(await self.bot.engine.update_for(job))
        await interaction.followup.send(f"Queued as job `{update.job.id}`: {message.jump_url}",
                                        ephemeral=True)

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        log.error("command %s failed", interaction.command and interaction.command.name,
                  exc_info=error)
        text = ("Sorry, something went wrong on our side and nothing was submitted. "
                f"(reference `{interaction.id}`)")
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Generate(bot))

"""How a job looks in Discord: the progress embed, the finished summary, the delivery text.

Pure functions of a JobUpdate, so an edit happens only when what they return changes. Times use
Discord's own relative timestamps (`<t:…:R>`), which every client keeps ticking by itself.
"""

from __future__ import annotations

import discord

from bot.engine import Job, JobState, JobUpdate
from bot.frontends.common.job_facts import (
    duration_text,
    options_text,
    progress_bar,
    status_line,
)
from bot.frontends.common.texts import fit_note, quote
from bot.frontends.common.thumbnails import thumbnail_url

COLOURS = {
    JobState.QUEUED: discord.Colour.light_grey(),
    JobState.SUBMITTING: discord.Colour.blurple(),
    JobState.PENDING: discord.Colour.blurple(),
    JobState.RUNNING: discord.Colour.blue(),
    JobState.SUCCEEDED: discord.Colour.teal(),
    JobState.FITTING: discord.Colour.teal(),
    JobState.DELIVERING: discord.Colour.teal(),
    JobState.DELIVERED: discord.Colour.green(),
    JobState.FAILED: discord.Colour.red(),
    JobState.CANCELED: discord.Colour.dark_grey(),
    JobState.EXPIRED: discord.Colour.orange(),
}


def shown(text: str, limit: int = 900) -> str:
    """What a person typed (a prompt), quoted so it reads as typed: no markdown, no masked
    links, no mass mentions. Cut to `limit` before escaping, which may add a few characters."""
    return quote(escape(text if len(text) <= limit else text[: limit - 1] + "…"), limit * 2)


def escape(text: str) -> str:
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def inputs_text(job: Job) -> str | None:
    """The inputs as given (file names, links), escaped: shown as text too."""
    names = job.display.inputs
    return "\n".join(f"{k}: {escape(v)}" for k, v in names.items()) or None


def progress_embed(update: JobUpdate) -> discord.Embed:
    job = update.job
    embed = discord.Embed(
        title=f"/{job.command} · {job.model}",
        description=shown(job.prompt) if job.prompt else None,
        colour=COLOURS[job.state],
    )
    embed.add_field(name="Status", value=status_line(update), inline=False)
    _add_timing(embed, update)
    embed.add_field(name="Options", value=options_text(job), inline=False)
    if inputs := inputs_text(job):
        embed.add_field(name="Inputs", value=inputs[:1024], inline=False)
    if job.notes:
        embed.add_field(name="Adjusted", value="\n".join(job.notes)[:1024], inline=False)
    if job.state is JobState.DELIVERED:
        _add_summary(embed, job)
    if picture := thumbnail_url(job):
        embed.set_thumbnail(url=picture)
    embed.set_footer(text=f"Job {job.id}")
    return embed


def _add_timing(embed: discord.Embed, update: JobUpdate) -> None:
    job = update.job
    if job.terminal:
        end = job.delivered_at or job.finished_at or job.updated_at
        embed.add_field(name="Took", value=duration_text(end - job.created_at))
        return
    embed.add_field(name="Started", value=f"<t:{int(job.created_at)}:R>")
    if update.eta_s is not None:
        done_at = int(job.created_at + update.elapsed_s + update.eta_s)
        embed.add_field(name="Expected", value=f"<t:{done_at}:R>")
    if bar := progress_bar(update):
        embed.add_field(name="Progress", value=f"`{bar}`", inline=False)


def _add_summary(embed: discord.Embed, job: Job) -> None:
    usage = job.usage or {}
    seed = job.options.get("seed")
    embed.add_field(name="Seed", value=str(seed) if seed is not None else "random")
    if length := usage.get("video_duration"):
        embed.add_field(name="Video", value=f"{length} s")
    if job.actual_prompt and job.actual_prompt != job.prompt:
        embed.add_field(name="Rewritten prompt", value=shown(job.actual_prompt)[:1024],
                        inline=False)


def delivery_text(job: Job, link: str | None = None) -> str:
    """The reply (or DM) that carries the video. Names the job id so a restart can find it."""
    ready = f"{READY} {job_marker(job)}"
    text = f"Y{ready[1:]}" if job.private else f"<@{job.user_id}> {ready}"
    return text + link_text(link) + _fit_line(job, link)


READY = "your video is ready."


def job_marker(job: Job) -> str:
    return f"Job `{job.id}`"


def is_delivery(content: str, job: Job) -> bool:
    """Whether a message of ours is this job's delivery (not a share or another job's)."""
    return READY in content.lower() and job_marker(job) in content


def link_text(link: str | None) -> str:
    if not link:
        return ""
    return (f"\nIt is too large to attach here: {link}"
            "\nThe link expires 24 hours after the video was made.")


def _fit_line(job: Job, link: str | None) -> str:
    """With a file re-encoded to fit (not with the link itself): the original's link, in <>
    so Discord shows no second preview."""
    note = "" if link else fit_note(job, f"<{job.result_url}>")
    return f"\n{note}" if note else ""


def fallback_text(job: Job, link: str | None = None) -> str:
    """The video on the private progress message, when a DM could not be sent."""
    return ("I could not send you a DM (they are closed), so here is your video; only you can "
            f"see it. {job_marker(job)}") + link_text(link) + _fit_line(job, link)


def share_text(job: Job, link: str | None = None) -> str:
    return (f"<@{job.user_id}> shared this video. {job_marker(job)}" + link_text(link)
            + _fit_line(job, link))


def is_share(content: str, job: Job) -> bool:
    return "shared this video." in content and job_marker(job) in content


def private_text(job: Job) -> str:
    """The private progress message: only the requester sees it."""
    return (f"Job `{job.id}` is private: only you see this, and the video comes to you by "
            "direct message.")


def gallery_embed(job: Job, jump_url: str | None) -> discord.Embed:
    """A finished video in the gallery channel: prompt, options, who asked, where."""
    embed = discord.Embed(title=f"/{job.command} · {job.model}",
                          description=shown(job.prompt) if job.prompt else None,
                          colour=COLOURS[JobState.DELIVERED])
    embed.add_field(name="Options", value=options_text(job), inline=False)
    embed.add_field(name="By", value=f"<@{job.user_id}>")
    if jump_url:
        embed.add_field(name="Job", value=f"[{job.id}]({jump_url})")
    embed.set_footer(text=gallery_footer(job))
    return embed


def gallery_footer(job: Job) -> str:
    return f"Gallery · job {job.id}"


def no_mentions() -> discord.AllowedMentions:
    return discord.AllowedMentions.none()


def allowed_mentions(job: Job) -> discord.AllowedMentions:
    return discord.AllowedMentions(users=[discord.Object(int(job.user_id))], roles=False,
                                   everyone=False, replied_user=False)


def queued_text(job: Job) -> str:
    return f"<@{job.user_id}> started job `{job.id}`."


def confirm_text(job: Job, jump_url: str) -> str:
    """The ephemeral answer to the command once its job is queued."""
    return f"Queued as job `{job.id}`: {jump_url}"


def input_error_text(option: str, message: str) -> str:
    """A validation error: the option, the rule, and that nothing was spent."""
    return f"**{option}**: {message}\nNothing was submitted."


# --- answers to buttons, and refusals --------------------------------------------------------

def limit_text(reason: str, resets_at: float | None) -> str:
    """A refusal at admission: what is left, and when it resets (a Discord timestamp)."""
    if resets_at is None:
        return f"{reason}\nNothing was submitted."
    when = int(resets_at)
    return f"{reason} It resets <t:{when}:R> (<t:{when}:t>).\nNothing was submitted."


def roles_text(names: list[str]) -> str:
    """Why someone may not make videos here, naming the roles that may."""
    if not names:
        return "Only members with certain roles can make videos here; ask a server admin."
    listed = ", ".join(f"**{n}**" for n in names)
    which = "the role" if len(names) == 1 else "one of the roles"
    return f"Only members with {which} {listed} can make videos here; ask a server admin."


DMS_OFF = "Videos are made in servers: please use this in a channel of your server."
NOT_A_MEMBER = ("Only members of this bot's server can make videos here; join it, or use the "
                "command in a channel there.")


def shared_text(jump_url: str) -> str:
    return f"Shared in the job's channel: {jump_url}"

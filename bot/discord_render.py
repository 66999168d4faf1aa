"""How a job looks in Discord: the progress embed, the finished summary, the delivery text.

Pure functions of a JobUpdate, so an edit happens only when what they return changes. Times use
Discord's own relative timestamps (`<t:…:R>`), which every client keeps ticking by itself.
"""

from __future__ import annotations

import discord

from bot.engine import JobUpdate
from bot.errors import describe
from bot.store import Job, JobState

BAR_CELLS = 12
COLOURS = {
    JobState.QUEUED: discord.Colour.light_grey(),
    JobState.SUBMITTING: discord.Colour.blurple(),
    JobState.PENDING: discord.Colour.blurple(),
    JobState.RUNNING: discord.Colour.blue(),
    JobState.SUCCEEDED: discord.Colour.teal(),
    JobState.DELIVERING: discord.Colour.teal(),
    JobState.DELIVERED: discord.Colour.green(),
    JobState.FAILED: discord.Colour.red(),
    JobState.CANCELED: discord.Colour.dark_grey(),
    JobState.EXPIRED: discord.Colour.orange(),
}
STATE_TEXT = {
    JobState.QUEUED: "Queued",
    JobState.SUBMITTING: "Sending to the provider",
    JobState.PENDING: "Waiting at the provider",
    JobState.RUNNING: "Generating",
    JobState.SUCCEEDED: "Fetching the video",
    JobState.DELIVERING: "Posting the video",
    JobState.DELIVERED: "Done",
    JobState.FAILED: "Failed",
    JobState.CANCELED: "Canceled",
    JobState.EXPIRED: "Expired",
}
HIDDEN_OPTIONS = {"obj_or_bg"}  # shown as roles next to the images instead


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def duration_text(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def progress_bar(update: JobUpdate) -> str | None:
    """A bar from elapsed time against the ETA; None when there is nothing to measure."""
    if update.job.state not in (JobState.PENDING, JobState.RUNNING) or update.eta_s is None:
        return None
    job = update.job
    spent = max(0.0, update.elapsed_s - ((job.submitted_at or job.created_at) - job.created_at))
    share = min(0.95, spent / max(1.0, spent + update.eta_s))
    filled = int(share * BAR_CELLS)
    return "█" * filled + "░" * (BAR_CELLS - filled) + f" {int(share * 100)}%"


def status_line(update: JobUpdate) -> str:
    job = update.job
    text = STATE_TEXT[job.state]
    if job.state is JobState.QUEUED and update.position:
        text += f": {ordinal(update.position)} in line"
    if job.cancel_requested and not job.terminal:
        text += " (canceled: the result will not be posted)"
    if job.error_code and job.state in (JobState.FAILED, JobState.EXPIRED):
        text += f": {describe(job.error_code, job.error_message or '')}"
    return text


def options_text(job: Job) -> str:
    parts = [f"{k}={v}" for k, v in job.options.items() if k not in HIDDEN_OPTIONS]
    roles = job.options.get("obj_or_bg")
    if roles:
        parts.append("roles=" + ",".join(roles))
    return ", ".join(parts) or "defaults"


def inputs_text(job: Job) -> str | None:
    names = job.display.get("inputs") or {}
    return "\n".join(f"{k}: {v}" for k, v in names.items()) or None


def progress_embed(update: JobUpdate) -> discord.Embed:
    job = update.job
    embed = discord.Embed(
        title=f"/{job.command} · {job.model}",
        description=_quote(job.prompt) if job.prompt else None,
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
        embed.add_field(name="Rewritten prompt", value=_quote(job.actual_prompt), inline=False)


def _quote(text: str, limit: int = 900) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "> " + text.replace("\n", "\n> ")


def delivery_text(job: Job, link: str | None = None) -> str:
    """The reply that carries the video. Names the job id so a restart can find it again."""
    text = f"<@{job.user_id}> your video is ready. Job `{job.id}`"
    if link:
        text += (f"\nIt is too large to attach here: {link}"
                 "\nThe link expires 24 hours after the video was made.")
    return text


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


def apology(reference: str, *, job: bool) -> str:
    """Something unexpected; the traceback is in the log under `reference`."""
    if job:
        return (f"Sorry, something went wrong on our side, so job `{reference}` was stopped. "
                "Please try again; if it keeps happening, give an admin the job id.")
    return ("Sorry, something went wrong on our side and nothing was submitted. "
            "Please try again; if it keeps happening, give an admin this reference: "
            f"`{reference}`.")

"""How a job looks in Discord: the progress embed, the finished summary, the delivery text.

Pure functions of a JobUpdate, so an edit happens only when what they return changes. Times use
Discord's own relative timestamps (`<t:…:R>`), which every client keeps ticking by itself.
"""

from __future__ import annotations

import discord

from bot.engine import Job, JobState, JobUpdate
from bot.errors import describe
from bot.frontends.common.texts import quote

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


EXACT_PLACES = 10  # further back a place is shown coarsely, so it changes (and is edited) rarely
PLACE_STEPS = (1, 1.5, 2, 3, 4, 5, 6, 8)  # per power of ten: "10+", "15+", ... "80+", "100+"


def place_text(position: int) -> str:
    """Exact near the front; further back the jobs ahead, rounded down to a coarse step."""
    if position <= EXACT_PLACES:
        return f"{ordinal(position)} in line"
    ahead = position - 1
    power = 10 ** (len(str(ahead)) - 1)
    step = max(s for s in PLACE_STEPS if s * power <= ahead)
    return f"{round(step * power)}+ jobs ahead"


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
        text += f": {place_text(update.position)}"
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
    names = job.display.inputs
    return "\n".join(f"{k}: {v}" for k, v in names.items()) or None


def progress_embed(update: JobUpdate) -> discord.Embed:
    job = update.job
    embed = discord.Embed(
        title=f"/{job.command} · {job.model}",
        description=quote(job.prompt) if job.prompt else None,
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
        embed.add_field(name="Rewritten prompt", value=quote(job.actual_prompt), inline=False)


def delivery_text(job: Job, link: str | None = None) -> str:
    """The reply (or DM) that carries the video. Names the job id so a restart can find it."""
    ready = f"{READY} {job_marker(job)}"
    text = f"Y{ready[1:]}" if job.private else f"<@{job.user_id}> {ready}"
    return text + link_text(link)


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


def fallback_text(job: Job, link: str | None = None) -> str:
    """The video on the private progress message, when a DM could not be sent."""
    return ("I could not send you a DM (they are closed), so here is your video; only you can "
            f"see it. {job_marker(job)}") + link_text(link)


def share_text(job: Job, link: str | None = None) -> str:
    return f"<@{job.user_id}> shared this video. {job_marker(job)}" + link_text(link)


def is_share(content: str, job: Job) -> bool:
    return "shared this video." in content and job_marker(job) in content


def private_text(job: Job) -> str:
    """The private progress message: only the requester sees it."""
    return (f"Job `{job.id}` is private: only you see this, and the video comes to you by "
            "direct message.")


def gallery_embed(job: Job, jump_url: str | None) -> discord.Embed:
    """A finished video in the gallery channel: prompt, options, who asked, where."""
    embed = discord.Embed(title=f"/{job.command} · {job.model}",
                          description=quote(job.prompt) if job.prompt else None,
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


def shared_text(jump_url: str) -> str:
    return f"Shared in the job's channel: {jump_url}"

"""How /jobs, /job, /queue, /settings and /usage look: pure functions from stored facts to text
and embeds, so the cogs only fetch and send.

Times are Discord timestamps (`<t:…>`), which every reader's client shows in their own time zone.
Jobs of other servers are never named: the queue is shared by every server the bot is in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import discord

from bot.engine import Job, JobUpdate, Post, ProgressRef
from bot.errors import describe
from bot.frontends.common.job_facts import STATE_TEXT, options_text, ordinal, status_with_eta
from bot.frontends.common.team_admin import UsageReport
from bot.frontends.common.teams import TeamSettings, Usage
from bot.frontends.discord.job_messages import COLOURS, inputs_text, shown

PAGE_SIZE = 10
MAX_LISTED = 100  # /jobs shows this many of the newest; /job finds any
QUEUE_LINES = 50  # in all, shared by the models, so the embed stays under Discord's 6000
TIMINGS = (("Created", "created_at"), ("Sent", "submitted_at"), ("Started", "started_at"),
           ("Finished", "finished_at"), ("Delivered", "delivered_at"))
NOT_ALLOWED = "Only members with the **Manage Server** permission can see or change these settings."


def stamp(when: float, style: str = "R") -> str:
    return f"<t:{int(when)}:{style}>"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def seconds_text(seconds: float) -> str:
    return f"{seconds:g} s"


def message_link(guild_id: int | str, ref: Post | ProgressRef | None) -> str | None:
    """A link that opens a stored message (in a DM for a post with place "dm"); None for an
    ephemeral answer, which Discord cannot link to."""
    if ref is None or not ref.channel_id or not ref.message_id:
        return None
    if isinstance(ref, ProgressRef):
        if ref.is_interaction:
            return None
    elif ref.place == "ephemeral":
        return None
    where = "@me" if isinstance(ref, Post) and ref.place == "dm" else guild_id
    return f"https://discord.com/channels/{where}/{ref.channel_id}/{ref.message_id}"


def job_link(job: Job, guild_id: int | str) -> str | None:
    """The posted result if there is one, else the progress message."""
    return message_link(guild_id, job.delivery) or message_link(guild_id, job.progress_ref)


def refusal_text(option: str, message: str) -> str:
    """A setting that cannot be saved: the option, the rule, and that nothing changed."""
    return f"**{option}**: {message}\nNothing was changed."


def unknown_job_text(job_id: str) -> str:
    shown = f" `{job_id}`" if job_id.isalnum() else ""
    return f"I can't find a job{shown} in this server. /jobs lists yours with their ids."


def page_count(total: int) -> int:
    return max(1, math.ceil(total / PAGE_SIZE))


def job_line(job: Job, guild_id: int | str) -> str:
    parts = [f"`{job.id}`", f"**{STATE_TEXT[job.state]}**", f"/{job.command}", job.model,
             stamp(job.created_at)]
    if link := job_link(job, guild_id):
        parts.append(f"[open]({link})")
    return " · ".join(parts)


def jobs_page(jobs: Sequence[Job], page: int, guild_id: int | str) -> discord.Embed:
    """One page (0-based) of someone's jobs, newest first."""
    embed = discord.Embed(title="Your jobs in this server", colour=discord.Colour.blurple())
    if not jobs:
        embed.description = ("You have no jobs here yet. /kf2v, /i2v, /animate or /reference "
                             "make one.")
        return embed
    shown = jobs[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    embed.description = "\n".join(job_line(job, guild_id) for job in shown)
    more = f" (the newest {MAX_LISTED})" if len(jobs) >= MAX_LISTED else ""
    embed.set_footer(text=f"Page {page + 1} of {page_count(len(jobs))}{more} · "
                          "/job <id> shows one in full")
    return embed


# --- /job -------------------------------------------------------------------------------------


def job_embed(update: JobUpdate, guild_id: int | str,
              chain: Sequence[Job] = ()) -> discord.Embed:
    """Everything known about one job; `chain`: the clips it extends and itself, root first."""
    job = update.job
    embed = discord.Embed(title=f"Job {job.id} · /{job.command} · {job.model}",
                          description=shown(job.prompt) if job.prompt else None,
                          colour=COLOURS[job.state])
    embed.add_field(name="Status", value=_status(update), inline=False)
    embed.add_field(name="Asked by", value=f"<@{job.user_id}>")
    embed.add_field(name="Attempts", value=str(job.attempts))
    embed.add_field(name="Provider task", value=f"`{job.task_id}`" if job.task_id else "not sent")
    embed.add_field(name="Inputs", value=(inputs_text(job) or "none")[:1024], inline=False)
    embed.add_field(name="Options", value=options_text(job)[:1024], inline=False)
    if job.negative_prompt:
        embed.add_field(name="Negative prompt", value=shown(job.negative_prompt, 500)[:1024],
                        inline=False)
    embed.add_field(name="Timings", value=_timings(job), inline=False)
    _add_outcome(embed, job, guild_id)
    if len(chain) > 1 or job.chain is not None:
        embed.add_field(name="Chain", value=chain_text(job, chain, guild_id)[:1024], inline=False)
    return embed


def chain_text(job: Job, chain: Sequence[Job], guild_id: int | str) -> str:
    """The clips this job continues, in order, each linked to its video, and the chain video."""
    clips = " → ".join(_clip(c, guild_id, c.id == job.id) for c in chain)
    lines = [f"{plural(len(chain), 'clip')}: {clips}"]
    video = job.chain
    if video is not None and (link := message_link(guild_id, video.post)):
        lines.append(f"[The whole chain]({link}) ({video.seconds:g} s)" if video.seconds
                     else f"[Why there is no chain video]({link})")
    elif video is not None and not video.done:
        lines.append("The whole chain is being put together.")
    lines.append(f"/extend job:{job.id} continues it.")
    return "\n".join(lines)


def _clip(job: Job, guild_id: int | str, this: bool) -> str:
    name = f"**`{job.id}`**" if this else f"`{job.id}`"
    link = message_link(guild_id, job.delivery)
    return f"[{name}]({link})" if link and not this else name


def _status(update: JobUpdate) -> str:
    return status_with_eta(update, stamp)


def _timings(job: Job) -> str:
    lines = [f"{label}: {stamp(when, 'f')}" for label, name in TIMINGS
             if (when := getattr(job, name)) is not None]
    return "\n".join(lines)


def _add_outcome(embed: discord.Embed, job: Job, guild_id: int | str) -> None:
    if job.error_code:
        text = describe(job.error_code, job.error_message or "")
        embed.add_field(name="Error", value=text[:1024], inline=False)
    if link := job_link(job, guild_id):
        name = "Result" if message_link(guild_id, job.delivery) else "Progress message"
        embed.add_field(name=name, value=link)
    if gallery := message_link(guild_id, job.delivery and job.delivery.gallery):
        embed.add_field(name="Gallery", value=gallery)
    if job.usage:
        embed.add_field(name="Usage", value=_usage_text(job.usage))
    if job.actual_prompt and job.actual_prompt != job.prompt:
        embed.add_field(name="Rewritten prompt", value=shown(job.actual_prompt)[:1024],
                        inline=False)


def _usage_text(usage: Mapping[str, Any]) -> str:
    """The provider's own figures: seconds of video first, then whatever else it reported."""
    parts = [f"{k}={v}" for k, v in usage.items() if k != "video_duration"]
    if "video_duration" in usage:
        parts.insert(0, f"{seconds_text(usage['video_duration'])} of video")
    return ", ".join(parts)[:1024]


# --- /queue -----------------------------------------------------------------------------------


def queue_embed(waiting: Mapping[str, Sequence[JobUpdate]], running: Sequence[JobUpdate],
                slots: Mapping[str, int], viewer: tuple[str, str], now: float) -> discord.Embed:
    """By model: what runs at the provider, then what waits, in order, with ETAs. `viewer` is
    (team id, user id): only that team's jobs are named, and private ones only to their owner."""
    embed = discord.Embed(title="Queue", colour=discord.Colour.blurple())
    models = sorted({*waiting, *(u.job.model for u in running)})
    if not models:
        embed.description = "Nothing is waiting or running: a new job starts right away."
        return embed
    per_model = max(3, min(10, QUEUE_LINES // len(models)))
    for model in models:
        busy = [u for u in running if u.job.model == model]
        queued = list(waiting.get(model, ()))
        name = f"{model} · {len(busy)}/{slots.get(model, 1)} running · {len(queued)} waiting"
        lines = [_queue_line(u, viewer, now) for u in [*busy, *queued]]
        if len(lines) > per_model:
            lines = [*lines[:per_model], f"…and {len(lines) - per_model} more"]
        embed.add_field(name=name[:256], value="\n".join(lines)[:1024], inline=False)
    if any(u.eta_s is not None for u in [*running, *(u for q in waiting.values() for u in q)]):
        embed.set_footer(text="Times are estimates from recent jobs of each model.")
    return embed


def _queue_line(update: JobUpdate, viewer: tuple[str, str], now: float) -> str:
    job = update.job
    place = ordinal(update.position) if update.position else STATE_TEXT[job.state]
    line = f"{place} · {_whose(job, viewer)}"
    if update.eta_s is not None:
        line += f" · ready {stamp(now + update.eta_s)}"
    return line


def _whose(job: Job, viewer: tuple[str, str]) -> str:
    team_id, user_id = viewer
    if job.team_id != team_id:
        return "another server's job"
    if job.private and job.user_id != user_id:
        return "a private job"
    return f"`{job.id}` <@{job.user_id}>"


# --- /settings --------------------------------------------------------------------------------


def settings_embed(settings: TeamSettings) -> discord.Embed:
    embed = discord.Embed(title="Settings for this server", colour=discord.Colour.blurple())
    gallery = settings.gallery_channel_id
    embed.add_field(name="Gallery channel", value=f"<#{gallery}>" if gallery else "none",
                    inline=False)
    roles = " ".join(f"<@&{r}>" for r in settings.generate_role_ids)
    embed.add_field(name="Who may make videos", value=f"{roles} and admins" if roles
                    else "everyone", inline=False)
    embed.add_field(name="Unfinished jobs per person",
                    value=_or_none(settings.user_max_concurrent, str))
    embed.add_field(name="Video per person per day",
                    value=_or_none(settings.user_daily_seconds, seconds_text))
    embed.add_field(name="Video for the server per day",
                    value=_or_none(settings.team_daily_seconds, seconds_text))
    embed.add_field(name="Defaults", value=_defaults_text(settings.defaults), inline=False)
    embed.set_footer(text="Changes apply from the next request. Days are UTC days; "
                          "a limit of 0 removes it.")
    return embed


def _or_none(value: float | None, show: Any) -> str:
    return "no limit" if value is None else show(value)


def _defaults_text(defaults: Mapping[str, Mapping[str, str]]) -> str:
    lines = [f"/{command}: " + ", ".join(f"{k} {v}" for k, v in values.items())
             for command, values in sorted(defaults.items()) if values]
    return "\n".join(lines) or "none: each command starts from its first model's defaults"


# --- /usage -----------------------------------------------------------------------------------


def usage_embed(report: UsageReport, settings: TeamSettings) -> discord.Embed:
    embed = discord.Embed(title="Usage", colour=discord.Colour.blurple())
    embed.add_field(name="This server today",
                    value=_usage_line(report.team_today, settings.team_daily_seconds))
    embed.add_field(name="You today",
                    value=_usage_line(report.user_today, settings.user_daily_seconds))
    embed.add_field(name="\u200b", value="\u200b")  # ends the row: today above, 30 days below
    embed.add_field(name="This server, last 30 days", value=_usage_line(report.team_month))
    embed.add_field(name="You, last 30 days", value=_usage_line(report.user_month))
    embed.add_field(name="Limits", value=_limits_text(report, settings), inline=False)
    embed.add_field(name="Daily budgets reset",
                    value=f"{stamp(report.resets_at, 't')} ({stamp(report.resets_at)})",
                    inline=False)
    embed.set_footer(text="Video-seconds as the provider counts them; days are UTC days.")
    return embed


def _usage_line(used: Usage, limit: float | None = None) -> str:
    lines = [f"{seconds_text(used.made_s)} made", plural(used.jobs, "job")]
    if used.pending_s:
        lines.append(f"{seconds_text(used.pending_s)} on its way")
    if limit is not None:
        left = max(0.0, limit - used.total_s)
        lines.append(f"{seconds_text(left)} left of {seconds_text(limit)}")
    return "\n".join(lines)


def _limits_text(report: UsageReport, settings: TeamSettings) -> str:
    lines = []
    if settings.user_max_concurrent is not None:
        lines.append(f"Unfinished jobs per person: {settings.user_max_concurrent} "
                     f"(you have {report.unfinished})")
    if settings.user_daily_seconds is not None:
        lines.append(f"Video per person per day: {seconds_text(settings.user_daily_seconds)}")
    if settings.team_daily_seconds is not None:
        lines.append(f"Video for the server per day: "
                     f"{seconds_text(settings.team_daily_seconds)}")
    return "\n".join(lines) or "No limits are set."

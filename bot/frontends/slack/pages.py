"""How `/wan jobs | job <id> | queue | usage | settings | help` read on Slack: pure functions
from stored facts to mrkdwn, answered ephemerally."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.engine import Job, JobUpdate
from bot.errors import describe
from bot.frontends.common.job_facts import (
    STATE_TEXT,
    inputs_text,
    options_text,
    ordinal,
    status_with_eta,
)
from bot.frontends.common.team_admin import UsageReport
from bot.frontends.common.teams import TeamSettings, Usage
from bot.frontends.slack.blocks import date, escape, quoted

LISTED = 20
HELP = """*Make a video*
`/kf2v`, `/i2v`, `/animate`, `/reference` with nothing after them open a form where you attach \
files. Or type links, options and the prompt, e.g.
`/kf2v https://…/first.png https://…/last.png resolution=480P a cat looks up`
Options: `model=`, `resolution=`, `duration=`, `mode=`, `size=`, `seed=`, `roles=`, \
`negative_prompt="…"`, `prompt_extend=yes|no`, `watermark=yes|no`, `private=yes`.
On a message with files, the shortcut *Make a Wan video* uses them.
*See and manage*
`/wan jobs` your recent jobs · `/wan job <id>` one in full · `/wan queue` what waits \
and runs · `/wan usage` video made and the limits · `/wan settings` (workspace admins)"""


def jobs_text(jobs: Sequence[Job]) -> str:
    if not jobs:
        return "You have no jobs here yet. `/kf2v`, `/i2v`, `/animate` or `/reference` make one."
    lines = [f"`{j.id}` /{j.command} · {STATE_TEXT[j.state]} · {date(j.created_at)}"
             + (f" · {escape(j.prompt[:60])}" if j.prompt else "") for j in jobs[:LISTED]]
    return "*Your jobs here, newest first*\n" + "\n".join(lines)


def job_text(update: JobUpdate, chain: Sequence[Job] = ()) -> str:
    """Everything known about one job; `chain`: the clips it extends and itself, root first."""
    job = update.job
    lines = [f"*Job `{job.id}`* · /{job.command} · {job.model}",
             quoted(job.prompt) if job.prompt else "",
             f"Status: {_status(update)}", f"Asked by <@{job.user_id}>",
             f"Provider task: `{job.task_id}`" if job.task_id else "Provider task: not sent",
             f"Inputs: {escape(inputs_text(job) or 'none')}",
             f"Options: {escape(options_text(job))}"]
    if job.negative_prompt:
        lines.append("Negative prompt:\n" + quoted(job.negative_prompt, 500))
    if job.error_code:
        lines.append("Error: " + describe(job.error_code, job.error_message or ""))
    if job.usage and "video_duration" in job.usage:
        lines.append(f"Video: {job.usage['video_duration']} s")
    if len(chain) > 1:
        lines.append(chain_line(job, chain))
    return "\n".join(line for line in lines if line)


def chain_line(job: Job, chain: Sequence[Job]) -> str:
    """The clips this job continues, in order, and where its chain video stands."""
    clips = " → ".join(f"*`{c.id}`*" if c.id == job.id else f"`{c.id}`" for c in chain)
    video = job.chain
    if video is None or not video.done:
        state = "being put together"
    elif video.state == "posted" and video.seconds:
        state = f"{video.seconds:g} s, in the job's thread"
    else:
        state = "not made" + (f": {video.note}" if video.note else "")
    return f"Chain ({len(chain)} clips): {clips}; the whole chain {state}."


def _status(update: JobUpdate) -> str:
    return status_with_eta(update, date)


def queue_text(waiting: Mapping[str, Sequence[JobUpdate]], running: Sequence[JobUpdate],
               slots: Mapping[str, int], team_id: str) -> str:
    models = sorted({*waiting, *(u.job.model for u in running)})
    if not models:
        return "Nothing is waiting or running: a new job starts right away."
    blocks = []
    for model in models:
        busy = [u for u in running if u.job.model == model]
        queued = list(waiting.get(model, ()))
        head = f"*{model}* · {len(busy)}/{slots.get(model, 1)} running · {len(queued)} waiting"
        mine = [f"{ordinal(u.position or 0)}: `{u.job.id}` <@{u.job.user_id}>"
                for u in queued[:10] if u.job.team_id == team_id and not u.job.private]
        blocks.append("\n".join([head, *mine]))
    return "\n\n".join(blocks)


def usage_text(report: UsageReport, settings: TeamSettings) -> str:
    return "\n".join([
        "*Video made (seconds)*",
        f"You today: {_usage(report.user_today, settings.user_daily_seconds)}",
        f"Workspace today: {_usage(report.team_today, settings.team_daily_seconds)}",
        f"You, 30 days: {_usage(report.user_month)}",
        f"Workspace, 30 days: {_usage(report.team_month)}",
        f"Your unfinished jobs: {report.unfinished}"
        + (f" of {settings.user_max_concurrent}" if settings.user_max_concurrent else ""),
        f"Daily budgets start again {date(report.resets_at)}.",
    ])


def _usage(used: Usage, limit: float | None = None) -> str:
    text = f"{used.total_s:g} s in {used.jobs} jobs"
    return text + (f" (limit {limit:g} s)" if limit else "")


def settings_text(settings: TeamSettings) -> str:
    who = ", ".join(_who(i) for i in settings.generate_role_ids) or "everyone"
    gallery = f"<#{settings.gallery_channel_id}>" if settings.gallery_channel_id else "none"
    return "\n".join([
        "*Settings*", f"Who may make videos: {who}", f"Gallery channel: {gallery}",
        f"Unfinished jobs per person: {settings.user_max_concurrent or 'no limit'}",
        f"Seconds per person per day: {settings.user_daily_seconds or 'no limit'}",
        f"Seconds for the workspace per day: {settings.team_daily_seconds or 'no limit'}",
    ])


def _who(identity: str) -> str:
    return f"<!subteam^{identity}>" if identity.startswith("S") else f"<@{identity}>"

"""How a job looks in Slack: Block Kit for the progress message and its summary, buttons, and
the texts that carry a video. Pure functions of a JobUpdate, so an edit is made only when what
they return changes.

Times are Slack date tokens (`<!date^…>`), which every reader's client shows in their own time
zone and keeps current without an edit.
"""

from __future__ import annotations

from typing import Any

from bot.engine import Job, JobState, JobUpdate
from bot.frontends.common.job_buttons import Action, custom_id
from bot.frontends.common.job_facts import (
    duration_text,
    inputs_text,
    options_text,
    progress_bar,
    status_line,
)
from bot.frontends.common.thumbnails import thumbnail_url

Block = dict[str, Any]
LABELS = {
    Action.CANCEL: ("Cancel", "danger"),
    Action.RERUN: ("Rerun", None),
    Action.EDIT: ("Edit and rerun", None),
    Action.SHARE: ("Share", "primary"),
    Action.DELETE: ("Delete", None),
    Action.EXTEND: ("Extend", None),
}
EMOJI = {
    JobState.QUEUED: ":hourglass:", JobState.SUBMITTING: ":outbox_tray:",
    JobState.PENDING: ":hourglass_flowing_sand:", JobState.RUNNING: ":movie_camera:",
    JobState.SUCCEEDED: ":inbox_tray:", JobState.FITTING: ":inbox_tray:",
    JobState.DELIVERING: ":inbox_tray:",
    JobState.DELIVERED: ":white_check_mark:", JobState.FAILED: ":x:",
    JobState.CANCELED: ":no_entry_sign:", JobState.EXPIRED: ":warning:",
}
MAX_TEXT = 2900  # a section's text may hold 3000 characters


def escape(text: str) -> str:
    """User text as plain text in mrkdwn: no links, mentions or markup of its own."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quoted(text: str, limit: int = 900) -> str:
    text = escape(text if len(text) <= limit else text[: limit - 1] + "…")
    return "> " + text.replace("\n", "\n> ")


def date(when: float, style: str = "{date_short_pretty} {time}") -> str:
    stamp = int(when)
    return f"<!date^{stamp}^{style}|{stamp}>"


def job_blocks(update: JobUpdate, actions: list[Action], *, picture: bool = True) -> list[Block]:
    """The progress message (and, once done, its summary); with `picture`, the first input
    image beside it when Slack may fetch it (see `thumbnail_url`)."""
    job = update.job
    lines = [f"{EMOJI[job.state]} *{status_line(update)}*", *_timing(update)]
    prompt = quoted(job.prompt) if job.prompt else ""
    head = _section(f"*/{job.command}* · {job.model}\n{prompt}")
    if picture and (url := thumbnail_url(job)):
        head["accessory"] = {"type": "image", "image_url": url, "alt_text": "the first input"}
    blocks: list[Block] = [
        head,
        _section("\n".join(lines)),
        _context([f"Options: {escape(options_text(job))}", *_inputs(job), *_notes(job),
                  f"Job `{job.id}` · <@{job.user_id}>"]),
    ]
    if job.state is JobState.DELIVERED:
        blocks.insert(2, _section(_summary(job)))
    if actions:
        blocks.append(buttons(job, actions))
    return blocks


def job_text(update: JobUpdate) -> str:
    """The plain text of the progress message (notifications, screen readers)."""
    job = update.job
    return f"/{job.command} job {job.id}: {status_line(update)}"


def buttons(job: Job, actions: list[Action]) -> Block:
    elements = []
    for action in actions:
        label, style = LABELS[action]
        button: Block = {"type": "button", "action_id": custom_id(action, job.id),
                         "text": {"type": "plain_text", "text": label}, "value": job.id}
        if style:
            button["style"] = style
        elements.append(button)
    return {"type": "actions", "block_id": f"wan:buttons:{job.id}", "elements": elements}


def _timing(update: JobUpdate) -> list[str]:
    job = update.job
    if job.terminal:
        end = job.delivered_at or job.finished_at or job.updated_at
        return [f"Took {duration_text(end - job.created_at)}"]
    lines = [f"Started {date(job.created_at)}"]
    if update.eta_s is not None:
        expected = job.created_at + update.elapsed_s + update.eta_s
        lines.append(f"Expected about {date(round(expected / 30) * 30)}")  # steady, not per tick
    if bar := progress_bar(update):
        lines.append(f"`{bar}`")
    return lines


def _summary(job: Job) -> str:
    seed = job.options.get("seed")
    parts = [f"Seed: {seed if seed is not None else 'random'}"]
    if length := (job.usage or {}).get("video_duration"):
        parts.append(f"Video: {length} s")
    text = " · ".join(parts) + "\nThe video is in this message's thread."
    if job.actual_prompt and job.actual_prompt != job.prompt:
        text += "\nRewritten prompt:\n" + quoted(job.actual_prompt)
    return text


def _inputs(job: Job) -> list[str]:
    names = inputs_text(job)
    return [f"Inputs: {escape(names).replace(chr(10), ', ')}"] if names else []


def _notes(job: Job) -> list[str]:
    return [f"Adjusted: {escape('; '.join(job.notes))}"] if job.notes else []


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_TEXT] or " "}}


def _context(texts: list[str]) -> Block:
    return {"type": "context",
            "elements": [{"type": "mrkdwn", "text": t[:MAX_TEXT]} for t in texts[:10]]}


# --- texts that carry a video ---------------------------------------------------------------


def video_title(job: Job) -> str:
    """The uploaded file's title: how a restart finds an upload made just before a crash."""
    return f"wan-{job.id}.mp4"


def chain_title(job: Job) -> str:
    """The chain video's title: how a restart finds it (as `video_title`)."""
    return f"wan-{job.id}-chain.mp4"


def video_comment(job: Job) -> str:
    who = "Your" if job.private else f"<@{job.user_id}>, your"
    return f"{who} video is ready. Job `{job.id}`"


LINK_NOTE = "The link expires 24 hours after the video was made."


def link_comment(lead: str, link: str, why: str) -> str:
    """`lead` (a video or share comment) with the provider's link instead of the file, and
    `why` there is no file."""
    return f"{lead}\n{why}. Here is its link: {link}\n{LINK_NOTE}"


def gallery_comment(job: Job) -> str:
    """The gallery's copy: whose, from where, and the job id (how it is found again)."""
    prompt = f": {escape(job.prompt[:200])}" if job.prompt else ""
    return f"<@{job.user_id}> made this in <#{job.channel_id}>{prompt} (gallery, job `{job.id}`)"


def share_comment(job: Job) -> str:
    return f"<@{job.user_id}> shared this video. Job `{job.id}`"


def queued_text(job: Job) -> str:
    return f"<@{job.user_id}> started job `{job.id}`."

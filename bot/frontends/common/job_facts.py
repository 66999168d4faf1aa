"""What people are told about a job on any front end: its state in words, its place, time and
progress, its options and inputs. Plain text; each front end lays it out its own way."""

from __future__ import annotations

from collections.abc import Callable

from bot.engine import Job, JobState, JobUpdate
from bot.errors import describe

BAR_CELLS = 12
STATE_TEXT = {
    JobState.QUEUED: "Queued",
    JobState.SUBMITTING: "Sending to the provider",
    JobState.PENDING: "Waiting at the provider",
    JobState.RUNNING: "Generating",
    JobState.SUCCEEDED: "Fetching the video",
    JobState.FITTING: "Making the video fit here",
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


def status_with_eta(update: JobUpdate, when: Callable[[float], str]) -> str:
    """The state, the place in line, when it is expected (as `when` writes a time) and
    whether a cancel is waiting: the status line of a job's full page."""
    job = update.job
    text = STATE_TEXT[job.state]
    if job.state is JobState.QUEUED and update.position:
        text += f": {ordinal(update.position)} in line"
    if update.eta_s is not None and not job.terminal:
        text += f", expected {when(job.created_at + update.elapsed_s + update.eta_s)}"
    if job.cancel_requested and not job.terminal:
        text += " (canceled: the result will not be posted)"
    return text

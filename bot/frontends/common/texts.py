"""What the bot says to people, in words every front end uses (Discord, Slack, terminal).

Plain sentences only: markup that differs between chat platforms (mentions, timestamps, bold)
stays in each front end's own texts.
"""

from __future__ import annotations

from bot.engine import CancelOutcome, Job

RESTARTING = "The bot is restarting; please try again in a minute."


def quote(text: str, limit: int = 900) -> str:
    """Text as a quoted block, cut to `limit` characters."""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "> " + text.replace("\n", "\n> ")


def apology(reference: str, *, job: bool) -> str:
    """Something unexpected; the traceback is in the log under `reference`."""
    if job:
        return (f"Sorry, something went wrong on our side, so job `{reference}` was stopped. "
                "Please try again; if it keeps happening, give an admin the job id.")
    return ("Sorry, something went wrong on our side and nothing was submitted. "
            "Please try again; if it keeps happening, give an admin this reference: "
            f"`{reference}`.")


def oops_text(reference: str) -> str:
    return ("Sorry, something went wrong on our side. Please try again; if it keeps happening, "
            f"give an admin this reference: `{reference}`.")


def fit_note(job: Job, link: str) -> str:
    """Said with a video re-encoded to fit the upload limit: the original's `link` (as the
    platform writes links), for the full quality. Empty for any other video."""
    if job.fit is None or not job.fit.made or not job.result_url:
        return ""
    return (f"Re-encoded to {job.fit.height}p to fit the upload limit here; the full-quality "
            f"original (its link expires 24 hours after the video was made): {link}")


# --- /jobs ------------------------------------------------------------------------------------


CANCELED = {
    CancelOutcome.DROPPED: "Canceled job `{id}`: it was still waiting, so nothing was spent.",
    CancelOutcome.CANCELED: "Canceled job `{id}` at the provider before it started: nothing "
                            "was spent.",
    CancelOutcome.WILL_NOT_DELIVER: "Job `{id}` is already being made and cannot be stopped "
                                    "(it still counts as used), but its result will not be "
                                    "posted.",
    CancelOutcome.REQUESTED: "Job `{id}` is being sent to the provider; it will be canceled "
                             "as soon as it arrives there.",
    CancelOutcome.TOO_LATE: "Job `{id}` has already finished, so there is nothing to cancel.",
    CancelOutcome.UNKNOWN: "I cannot find job `{id}` any more.",
}
NOT_YOURS = "Only the person who started this job, or a server admin, can do that."
ONLY_REQUESTER = "Only the person who started this job can do that."
UNKNOWN_JOB = "I cannot find this job any more."
INPUTS_GONE = ("The provider keeps uploaded files for 48 hours and this job's are gone, so it "
               "cannot be made again. Please run the command again with the files.")
VIDEO_GONE = "This video is no longer kept, so it cannot be shared; Rerun makes it again."
NOTHING_TO_EDIT = "This job has no prompt to edit; use Rerun instead."


def cancel_text(job_id: str, outcome: CancelOutcome) -> str:
    return CANCELED[outcome].format(id=job_id)


def deleted_text(job_id: str) -> str:
    return f"Deleted the video of job `{job_id}`."

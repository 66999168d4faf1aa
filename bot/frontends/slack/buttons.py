"""Which buttons a Slack job message carries. On Slack the progress message becomes the job's
summary (the video is in its thread), so it carries the result's buttons too."""

from __future__ import annotations

from bot.engine import Job, JobState
from bot.frontends.common.job_buttons import (
    CANCELABLE,
    ENDED_EARLY,
    Action,
    again_actions,
    video_actions,
)


def actions_for(job: Job) -> list[Action]:
    if job.state in CANCELABLE and not job.cancel_requested:
        return [Action.CANCEL]
    if job.state in ENDED_EARLY:
        return again_actions(job)
    if job.state is not JobState.DELIVERED:
        return []
    delivery = job.delivery
    share = job.private and (delivery is None or delivery.shared is None)
    delete = delivery is not None and not delivery.deleted
    return [*([Action.SHARE] if share else []), *video_actions(job),
            *([Action.DELETE] if delete else [])]

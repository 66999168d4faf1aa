"""The job buttons every chat front end shows: which actions a job offers in which state, and
the `wan:<action>:<job id>` ids that let a click be handled by any process, after a restart too.
"""

from __future__ import annotations

import re
from enum import StrEnum

from bot.engine import Job, JobState
from bot.frontends.common.reruns import editable

JOB_ID = r"(?P<id>[0-9a-f]{1,32})"
FORM = re.compile(rf"wan:editform:{JOB_ID}")
EXTEND_FORM = re.compile(rf"wan:extendform:{JOB_ID}")
CANCELABLE = frozenset({JobState.QUEUED, JobState.SUBMITTING, JobState.PENDING,
                        JobState.RUNNING, JobState.SUCCEEDED, JobState.FITTING})
ENDED_EARLY = frozenset({JobState.FAILED, JobState.CANCELED, JobState.EXPIRED})


class Action(StrEnum):
    CANCEL = "cancel"  # stop the job (requester or admin)
    RERUN = "rerun"  # the same again with a new seed (who may generate; private: requester)
    EDIT = "edit"  # the form, then a new job (who may generate; private: requester)
    SHARE = "share"  # a private result into the job's channel (requester)
    DELETE = "delete"  # remove the result message (requester or admin)
    EXTEND = "extend"  # the form, then a clip that starts from this one's last frame (as rerun)

BUTTON = re.compile(rf"wan:(?P<action>{'|'.join(Action)}):{JOB_ID}")


def custom_id(action: Action, job_id: str) -> str:
    return f"wan:{action}:{job_id}"


def again_actions(job: Job) -> list[Action]:
    return [Action.RERUN, *([Action.EDIT] if editable(job) else [])]


def video_actions(job: Job) -> list[Action]:
    """On a delivered video: make it again, or continue it."""
    return [*again_actions(job), Action.EXTEND]

"""A job made again, for any front end: the same inputs and options with a new seed, or with
an edited prompt, negative prompt and seed.

The inputs are reused as the provider read them (`job.media`). Temporary uploads (`oss://`)
live 48 hours at the provider, so a job whose inputs were uploaded longer ago than that (less a
margin for time spent in the queue) cannot be made again from them.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from bot.engine import Job, JobRequest
from bot.errors import InputError
from bot.provider import catalog

UPLOAD_KEEP_S = 48 * 3600.0  # the provider keeps temporary uploads this long
QUEUE_MARGIN_S = 3600.0  # a rerun may wait this long in the queue before the provider reads


@dataclass(frozen=True)
class Edit:
    """What an edited rerun changes; a seed of None means a new random one."""

    prompt: str | None
    negative_prompt: str | None
    seed: int | None


def inputs_expired(job: Job, now: float) -> bool:
    """The job's uploaded inputs are gone (or will be before a rerun reaches the provider)."""
    return job.oss and now - job.created_at > UPLOAD_KEEP_S - QUEUE_MARGIN_S


def editable(job: Job) -> bool:
    """The job's model takes a prompt, so there is something to edit."""
    return catalog.get_model(job.model).prompt_max is not None


def new_seed(rng: random.Random | None = None) -> int:
    return (rng or random.SystemRandom()).randint(0, catalog.SEED_MAX)


def again(job: Job, *, user_id: str, channel_id: str, upload_limit: int | None = None,
          edit: Edit | None = None) -> JobRequest:
    """The request that makes `job` again for `user_id`, checked like a new one (InputError).
    `upload_limit`: where the rerun was asked for, when known."""
    model = catalog.get_model(job.model)
    options = dict(job.options)
    prompt, negative = job.prompt, job.negative_prompt
    if edit is not None:
        prompt, negative = edit.prompt or None, edit.negative_prompt or None
    if "seed" in model.options:
        options["seed"] = edit.seed if edit is not None and edit.seed is not None else new_seed()
    params = catalog.check_request(model, job.media, prompt, negative, options)
    base = {f.name: getattr(job, f.name) for f in dataclasses.fields(JobRequest)}
    return JobRequest(**{
        **base, "user_id": user_id, "channel_id": channel_id, "options": params,
        "prompt": prompt, "negative_prompt": negative,
        "display": dataclasses.replace(
            job.display, rerun_of=job.id, upload_limit=upload_limit or job.display.upload_limit),
    })


def parse_seed(text: str | None) -> int | None:
    """A seed as typed in a form: empty for a random one, else a whole number in range."""
    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > catalog.SEED_MAX:
        raise InputError("seed", f"must be a whole number from 0 to {catalog.SEED_MAX}, "
                                 "or empty for a random one.")
    return int(text)

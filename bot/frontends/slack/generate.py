"""The path every Slack generate request takes, typed, from a modal or an Extend: who may, the
team's defaults, the cheap checks, then the download, probe and hand-over of every input, then
the queue. Anything wrong is said to the person (`Notify`) and nothing is spent."""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

from bot.clock import Clock
from bot.config import Settings
from bot.engine import Job, Store
from bot.errors import ApiError, InputError
from bot.frontends.common import extend, teams
from bot.frontends.common.admission import AdmissionGate
from bot.frontends.common.declared import check_inputs
from bot.frontends.common.defaults import with_defaults
from bot.frontends.common.intake import Ask, Owner, build_request, checked, most_seconds
from bot.frontends.common.lifecycle import Lifecycle
from bot.frontends.common.options import option_names, parameters
from bot.frontends.common.teams import Claim, LimitError
from bot.frontends.common.texts import RESTARTING, apology
from bot.frontends.slack.access import SlackAccess
from bot.frontends.slack.command_text import links_by_field, parse
from bot.frontends.slack.submit import Notify, SlackSubmitter
from bot.media.prepare import MediaContext, MediaSource
from bot.provider.catalog import Command

log = logging.getLogger(__name__)

PLATFORM = "slack"


def team_of(slack_team_id: str) -> str:
    """A workspace as a team: kept apart from Discord's guild ids."""
    return f"slack:{slack_team_id}"


def error_text(exc: InputError) -> str:
    return f"*{exc.option}*: {exc.message}\nNothing was submitted."


def ask_from_text(command: Command, text: str) -> Ask | None:
    """The request typed after a slash command; None when it has no links (then a modal)."""
    typed = parse(text)
    if not typed.links:
        return None
    options = dict(typed.options)
    inputs = {field: [MediaSource.link(u) for u in urls]
              for field, urls in links_by_field(command, typed.links).items()}
    roles = options.pop("roles", None)
    private = bool(options.pop("private", False))
    model = options.pop("model", None)
    negative = options.pop("negative_prompt", None)
    params = parameters(**options, obj_or_bg=roles.split(",") if roles else None)
    return Ask(command, model, typed.prompt, negative, params, inputs, option_names(command),
               private=private)


class SlackGenerate:
    def __init__(self, settings: Settings, store: Store, *, access: SlackAccess,
                 lifecycle: Lifecycle, submitter: SlackSubmitter,
                 media: Callable[[], MediaContext], clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.lifecycle = lifecycle
        self.submitter = submitter
        self.media = media
        self.gate = AdmissionGate(store)  # limits checked before inputs are fetched
        self.clock = clock

    async def checked(self, ask: Ask, owner: Owner) -> Ask:
        """The ask with the team's defaults, after the checks that cost nothing (InputError)."""
        team = await teams.load(self.store, owner.team_id)
        ask = with_defaults(ask, team)
        checked(ask)
        check_inputs(ask)
        return ask

    async def run(self, ask: Ask, owner: Owner, notify: Notify) -> None:
        if self.lifecycle.closing:
            await notify(RESTARTING)
            return
        async with self.lifecycle.command_running():
            refusal = await self.access.generate_refusal(owner.team_id, owner.user_id)
            if refusal is not None:
                await notify(refusal)
                return
            await self._queue(ask, owner, notify)

    async def extend(self, parent: Job, user_id: str, prompt: str | None,
                     last_frame: MediaSource | None, notify: Notify) -> None:
        """The clip that continues `parent` (the person was checked like a rerun's), from its
        last frame, in its channel: held within the limits, then queued like any request."""
        if self.lifecycle.closing:
            await notify(RESTARTING)
            return
        owner = Owner(PLATFORM, parent.team_id, parent.channel_id, user_id)

        async def queue() -> None:
            ctx = self.media()
            async with extend.last_frame(parent, ctx.media_pool) as frame:
                ask = extend.ask_for(parent, frame, prompt=prompt, last_frame=last_frame)
                check_inputs(ask)
                await self._held(ask, owner, notify, parent.id)

        async with self.lifecycle.command_running():
            await self._told(queue(), notify)

    async def _queue(self, ask: Ask, owner: Owner, notify: Notify) -> None:
        async def queue() -> None:
            await self._held(await self.checked(ask, owner), owner, notify)

        await self._told(queue(), notify)

    async def _held(self, ask: Ask, owner: Owner, notify: Notify,
                    parent_id: str | None = None) -> None:
        """Hold a place within the limits (refused before any download), then fetch and
        prepare the inputs and queue the job (where the limits are checked once more)."""
        claim = Claim(owner.team_id, owner.user_id, most_seconds(ask))
        async with self.gate.hold(claim, self.clock.now()):
            request = await build_request(ask, owner, self.media(), self.settings.region)
            await self.submitter.submit(dataclasses.replace(request, parent_id=parent_id),
                                        notify)

    async def _told(self, work: Coroutine[Any, Any, None], notify: Notify) -> None:
        """Run `work`; whatever stops it is said to the person (nothing was submitted)."""
        try:
            await work
        except LimitError as exc:
            await notify(f"{exc}\nNothing was submitted.")
        except InputError as exc:
            await notify(error_text(exc))
        except ApiError as exc:
            log.warning("input hand-over failed: %s", exc)
            await notify(f"{exc.user_message()}\nNothing was submitted.")
        except Exception:
            reference = secrets.token_hex(4)
            log.exception("a Slack request failed before it was queued (reference %s)",
                          reference)
            await notify(apology(reference, job=False))

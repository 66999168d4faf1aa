"""/wan: jobs, job <id>, queue, usage, settings (workspace admins: a modal), help."""

from __future__ import annotations

from typing import Any

from bot.engine import AT_PROVIDER
from bot.frontends.common import teams
from bot.frontends.common.team_admin import usage_report
from bot.frontends.slack import pages
from bot.frontends.slack.generate import PLATFORM, team_of
from bot.frontends.slack.services import Services
from bot.frontends.slack.settings_modal import NOT_ADMIN, settings_view
from bot.frontends.slack.submit import Notify


async def wan_command(services: Services, payload: dict[str, Any], notify: Notify) -> None:
    words = str(payload.get("text") or "").split()
    verb, rest = (words[0].lower(), words[1:]) if words else ("help", [])
    team_id, user_id = team_of(str(payload["team_id"])), str(payload["user_id"])
    if verb == "jobs":
        await notify(pages.jobs_text(await services.store.user_jobs(
            PLATFORM, team_id, user_id, pages.LISTED)))
    elif verb == "job":
        await notify(await _job(services, team_id, user_id, rest[0] if rest else ""))
    elif verb == "queue":
        await notify(await _queue(services, team_id))
    elif verb == "usage":
        now = services.engine.clock.now()
        report = await usage_report(services.store, team_id, user_id, now)
        await notify(pages.usage_text(report, await teams.load(services.store, team_id)))
    elif verb == "settings":
        await _settings(services, payload, team_id, user_id, notify)
    else:
        await notify(pages.HELP)


async def _job(services: Services, team_id: str, user_id: str, job_id: str) -> str:
    """One job of this workspace's, unless it is someone else's private one."""
    job = await services.store.get_job(job_id.strip().lower())
    hidden = job is None or job.team_id != team_id or (job.private and job.user_id != user_id)
    if job is None or hidden:
        shown = f" `{job_id}`" if job_id.isalnum() else ""
        return f"I can't find a job{shown} here. `/wan jobs` lists yours with their ids."
    chain = await services.store.chain_of(job.id) if job.parent_id else [job]
    return pages.job_text(await services.engine.update_for(job), chain)


async def _queue(services: Services, team_id: str) -> str:
    engine = services.engine
    waiting = await engine.queue()
    running = [await engine.update_for(j) for j in await services.store.jobs_in(AT_PROVIDER)]
    models = {*waiting, *(u.job.model for u in running)}
    return pages.queue_text(waiting, running, {m: engine.slots(m) for m in models}, team_id)


async def _settings(services: Services, payload: dict[str, Any], team_id: str, user_id: str,
                    notify: Notify) -> None:
    if not await services.access.is_admin(user_id):
        await notify(NOT_ADMIN)
        return
    current = await teams.load(services.store, team_id)
    await services.client.views_open(trigger_id=payload["trigger_id"],
                                     view=settings_view(current, str(payload["channel_id"])))

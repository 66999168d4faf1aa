"""Who may do what in a Slack workspace, read at each use so a settings change applies at once:
workspace admins and owners always may; otherwise the team's roles, which on Slack are user ids
(U…) and user groups (S…)."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.engine import Job, Store
from bot.frontends.common import teams

log = logging.getLogger(__name__)

NOT_ALLOWED = "Only some people can make videos in this workspace; ask a workspace admin."


class SlackAccess:
    def __init__(self, client: AsyncWebClient, store: Store) -> None:
        self.client = client
        self.store = store

    async def is_admin(self, user_id: str) -> bool:
        try:
            found = (await self.client.users_info(user=user_id)).get("user") or {}
        except SlackApiError as exc:
            log.warning("users.info failed for %s: %s", user_id, exc.response.get("error"))
            return False
        return any(found.get(k) for k in ("is_admin", "is_owner", "is_primary_owner"))

    async def generate_refusal(self, team_id: str, user_id: str) -> str | None:
        """Why this person may not make videos here; None when they may."""
        allowed = (await teams.load(self.store, team_id)).generate_role_ids
        if not allowed or user_id in allowed or await self.is_admin(user_id):
            return None
        for group in (g for g in allowed if g.startswith("S")):
            if user_id in await self._members(group):
                return None
        return NOT_ALLOWED

    async def may_manage(self, job: Job, user_id: str) -> bool:
        """The requester, or a workspace admin."""
        return user_id == job.user_id or await self.is_admin(user_id)

    async def _members(self, group: str) -> list[str]:
        try:
            answer = await self.client.usergroups_users_list(usergroup=group)
        except SlackApiError as exc:
            log.warning("usergroups.users.list failed for %s: %s", group,
                        exc.response.get("error"))
            return []
        return list(answer.get("users") or [])

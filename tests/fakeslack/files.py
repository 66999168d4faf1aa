"""Files: the three-step external upload, files.info/list, and the private file host."""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import ClassVar

from aiohttp import BodyPartReader, web

from tests.fakeslack.model import FakeChannel, Json, SlackFile
from tests.fakeslack.records import UploadRecord
from tests.fakeslack.webapi import MethodTable, WebApiMethods
from tests.fakeslack.wire import SlackError, invalid_arguments, json_arg, sign_in_page

_CHANNEL_ID = re.compile(r"^[CGDZ][A-Z0-9]{8,}$")  # completeUploadExternal refuses user ids
_CHUNK_BYTES = 64 * 1024


class FileMethods(WebApiMethods):
    """files.getUploadURLExternal, the upload URL, files.completeUploadExternal, files.info,
    files.list, and ``url_private*`` (bytes for the bot token, a sign-in page otherwise)."""

    FILE_METHODS: ClassVar[MethodTable] = {
        "files.getUploadURLExternal": ("_get_upload_url", "files:write", "bot"),
        "files.completeUploadExternal": ("_complete_upload", "files:write", "bot"),
        "files.info": ("_file_info", "files:read", "bot"),
        "files.list": ("_file_list", "files:read", "bot"),
        "files.delete": ("_file_delete", "files:write", "bot"),
    }

    share_delay_s: float  # > 0: the share message appears later, as Slack shares async
    _upload_tickets: dict[str, str]  # upload URL token -> file id
    _timers: list[asyncio.TimerHandle]

    def _check_uploads_allowed(self, length: int) -> None:
        if self.workspace.file_uploads_disabled:
            raise SlackError("file_uploads_disabled")
        limit = self.workspace.max_upload_bytes
        if limit is not None and length > limit:
            raise SlackError("file_upload_size_restricted")

    async def _get_upload_url(self, params: Json) -> Json:
        filename = str(params.get("filename") or "")
        if not filename or "length" not in params:
            raise invalid_arguments("missing required field", "/filename" if not filename
                                    else "/length")
        length = int(params["length"])
        if length <= 0:
            raise SlackError("missing_argument")
        self._check_uploads_allowed(length)
        stored = SlackFile(filename, b"", self.bot_user.id, self.team_id, self.base_url)
        self.files[stored.id] = stored
        self.uploads[stored.id] = UploadRecord(stored, length)
        ticket = secrets.token_urlsafe(16)
        self._upload_tickets[ticket] = stored.id
        return {"upload_url": f"{self.base_url}/upload/v1/{ticket}", "file_id": stored.id}

    async def _receive_upload(self, request: web.Request) -> web.StreamResponse:
        """POST to the upload URL: raw bytes or multipart, read in chunks as they stream."""
        file_id = self._upload_tickets.get(request.match_info["ticket"])
        if file_id is None:
            return web.Response(status=404, text="not found")
        record = self.uploads[file_id]
        record.chunked = request.headers.get("Transfer-Encoding", "").lower() == "chunked"
        data = bytearray()
        if request.content_type.startswith("multipart/"):
            async for part in await request.multipart():
                if isinstance(part, BodyPartReader) and part.filename:
                    while chunk := await part.read_chunk(_CHUNK_BYTES):
                        data.extend(chunk)
        else:
            async for chunk in request.content.iter_chunked(_CHUNK_BYTES):
                data.extend(chunk)
        record.received = len(data)
        if len(data) != record.length:
            return web.Response(status=400, text=f"length mismatch: {len(data)} != "
                                                 f"{record.length}")
        record.file.data = bytes(data)
        self._waiters.poke()
        return web.Response(text=f"OK - {len(data)}")

    def _share_channel(self, params: Json) -> FakeChannel | None:
        """Where completeUploadExternal shares: a channel the bot is really in (chat:write.public
        does not cover files), or None (the file stays private)."""
        channel_id = str(params.get("channel_id") or params.get("channels") or "")
        if not channel_id:
            return None
        if not _CHANNEL_ID.match(channel_id):
            raise invalid_arguments("input must match regex pattern: ^[CGDZ][A-Z0-9]{8,}$",
                                    "/channel_id")
        channel = self.channels.get(channel_id)
        if channel is None or (channel.is_private and not channel.bot_member):
            raise SlackError("channel_not_found")
        if not channel.bot_member:
            raise SlackError("not_in_channel")
        return channel

    def _completed_records(self, params: Json) -> list[UploadRecord]:
        entries = json_arg(params, "files")
        if not isinstance(entries, list) or not entries:
            raise invalid_arguments("missing required field", "/files")
        records = []
        for entry in entries:
            record = self.uploads.get(str(entry.get("id") or ""))
            if record is None or record.received != record.length:
                raise SlackError("file_not_found")
            record.file.title = entry.get("title") or record.file.name
            records.append(record)
        return records

    async def _complete_upload(self, params: Json) -> Json:
        self._check_uploads_allowed(0)
        channel = self._share_channel(params)
        records = self._completed_records(params)
        thread_ts = str(params.get("thread_ts") or "") or None
        comment = str(params.get("initial_comment") or "")
        for record in records:
            record.completed = True
            record.channel_id = channel.id if channel else None
            record.thread_ts, record.initial_comment = thread_ts, comment
        if channel is not None and self.share_delay_s > 0:
            later = asyncio.get_running_loop().call_later(
                self.share_delay_s, self._share, channel, [r.file for r in records], comment,
                thread_ts)
            self._timers.append(later)
        elif channel is not None:
            self._share(channel, [r.file for r in records], comment, thread_ts)
        self._waiters.poke()
        return {"files": [{"id": r.file.id, "title": r.file.title} for r in records]}

    def _share(self, channel: FakeChannel, files: list[SlackFile], comment: str,
               thread_ts: str | None) -> None:
        """The message the upload shows as: the files, in the thread if one was given."""
        message = self.bot_message(channel, comment, [], thread_ts)
        message.files = list(files)
        for shared in files:
            shared.shares.append(message)
        self._waiters.poke()

    async def _file_info(self, params: Json) -> Json:
        return {"file": self.file(str(params.get("file") or "")).payload(), "comments": []}

    async def _file_delete(self, params: Json) -> Json:
        """The bot's own file leaves every message showing it (others': cant_delete_file)."""
        stored = self.file(str(params.get("file") or ""))
        if stored.user_id != self.bot_user.id:
            raise SlackError("cant_delete_file")
        del self.files[stored.id]
        stored.deleted = True
        for message in stored.shares:
            message.files = [f for f in message.files if f is not stored]
        self._waiters.poke()
        return {}

    async def _file_list(self, params: Json) -> Json:
        channel, user = params.get("channel"), params.get("user")
        chosen = [f for f in self.files.values()
                  if (not channel or any(m.channel_id == channel for m in f.shares))
                  and (not user or f.user_id == user)
                  and (f.shares or f.user_id != self.bot_user.id)]
        chosen.sort(key=lambda f: f.created, reverse=True)
        count = int(params.get("count") or 100)
        return {"files": [f.payload() for f in chosen[:count]],
                "paging": {"count": count, "total": len(chosen), "page": 1, "pages": 1}}

    async def _private_file(self, request: web.Request) -> web.StreamResponse:
        """``url_private*``: the bytes for the bot token, else 200 with a sign-in page."""
        team_file = request.match_info["team_file"]
        stored = self.files.get(team_file.split("-", 1)[-1])
        authorized = request.headers.get("Authorization") == f"Bearer {self.bot_token}"
        served = stored is not None and authorized
        self.file_fetches.append((stored.id if stored else team_file, served))
        self._waiters.poke()
        if stored is None or not authorized:
            return sign_in_page()
        if stored.redirect_to:
            raise web.HTTPFound(stored.redirect_to)
        headers = {"Content-Type": stored.mimetype or "application/octet-stream"}
        if request.match_info["tail"].startswith("download/"):
            headers["Content-Disposition"] = f'attachment; filename="{stored.name}"'
        return web.Response(body=stored.data, headers=headers)

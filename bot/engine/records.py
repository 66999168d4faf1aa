"""What a front end keeps in a job: where its progress is shown, where its video went, and
facts for showing it. Typed records, stored as JSON in the job's row.

Each names its `platform`, so every front end keeps its own kind of place in the same fields:
Discord a channel id and a message id, Slack a channel id and the message's `ts`.
`from_dict` reads what `to_dict` wrote (and rows written before these records existed).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Self


class Record:
    """`to_dict` leaves out unset values, so stored rows stay small; `from_dict` ignores keys
    it does not know, so an older process can read a newer row."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Record):
                value = value.to_dict()
            if value is None or value is False or (isinstance(value, str | dict) and not value):
                continue
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, kw_only=True)
class Post(Record):
    """A message a front end posted."""

    platform: str = "discord"
    channel_id: str = ""
    message_id: str = ""  # Slack: the message's ts
    mode: str | None = None  # a video's post: "file" (attached) or "link"
    place: str | None = None  # "dm" or "ephemeral"; None: in the channel itself


@dataclass(frozen=True, kw_only=True)
class ProgressRef(Record):
    """Where a job's progress is shown: a channel message, or (Discord) the ephemeral answer
    of the command, reached through the interaction's webhook while its token lives."""

    platform: str = "discord"
    channel_id: str
    message_id: str  # Slack: the message's ts
    kind: str = "message"  # or "interaction"
    application_id: str | None = None  # interaction only
    token: str | None = None  # interaction only: a secret for 15 minutes
    expires_at: float | None = None  # interaction only

    @property
    def is_interaction(self) -> bool:
        return self.kind == "interaction"

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if data.get("kind") == "message":
            del data["kind"]
        return data


@dataclass(frozen=True, kw_only=True)
class Delivery(Post):
    """Where a job's video went, and what happened to that post since."""

    shared: Post | None = None  # a private video shared into its channel
    gallery: Post | None = None  # the copy in the team's gallery channel
    deleted: bool = False  # the post was deleted with its Delete button
    path: str | None = None  # the terminal front end: the file written

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        posts = {k: Post.from_dict(data[k]) for k in ("shared", "gallery") if data.get(k)}
        return super().from_dict({**data, **posts})


@dataclass(frozen=True, kw_only=True)
class Display(Record):
    """Facts a front end shows or needs later, known when the job was asked for."""

    inputs: dict[str, str] = field(default_factory=dict)  # option -> the file name given
    upload_limit: int | None = None  # the destination's upload limit, in bytes
    out: str | None = None  # the terminal front end: where to write the video
    rerun_of: str | None = None  # the job this one makes again


@dataclass(frozen=True, kw_only=True)
class Fit(Record):
    """The video made to fit where it goes: written with the move to `delivering`, so a
    restart posts the same file. No `path`: even the smallest encode was too big (the link
    goes instead)."""

    limit_bytes: int  # the destination's upload limit it was made for
    path: str | None = None  # the re-encoded file (the original stays at the job's video_path)
    size_bytes: int | None = None
    height: int | None = None  # lines
    poster: str | None = None  # no file fits: a still (JPEG) shown with the link instead

    @property
    def made(self) -> bool:
        return self.path is not None


@dataclass(frozen=True, kw_only=True)
class ChainVideo(Record):
    """An extended clip's whole chain, stitched into one video and posted after the clip.

    `state` moves pending -> posting -> posted (or failed); `posting` is written, with the file
    (or the note saying why there is none), before the post, so a restart looks for the post
    before posting again."""

    state: str = "pending"  # pending, posting, posted, failed
    path: str | None = None  # the stitched (and fitted) file, while it waits to be posted
    seconds: float | None = None  # its length: the sum of the clips'
    clips: int | None = None  # how many clips it joins
    fitted: bool = False  # re-encoded to fit where it goes
    note: str | None = None  # why there is no chain video (a clip's file is gone ...)
    post: Post | None = None  # where it went

    @property
    def done(self) -> bool:
        return self.state in ("posted", "failed")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        post = {"post": Post.from_dict(data["post"])} if data.get("post") else {}
        return super().from_dict({**data, **post})

"""A local fake of Slack (Web API, Socket Mode, uploads, private files, response_url hooks)
that the real slack_sdk and slack_bolt talk to; see README.md here.

Start it with ``run_fake_slack()`` (or the ``fake_slack`` fixture of ``tests.slack_support``),
point a client at ``fake.api_url``, run a bolt app with ``connected_app(fake, app)``, act as a
user (``slash``, ``click``, ``shortcut``, ``submit_view``, ``event``) and assert on what the app
did: ``fake.messages_in``, ``thread``, ``dm_messages``, ``ephemerals_for``, ``uploads_titled``,
``calls`` (every Web API call), ``ack_failures()``.

Modules, one job each: ``model`` (Slack's objects), ``wire`` (HTTP plumbing, rate tiers),
``records`` (what was seen, waiters), ``state`` (in-memory store, channel rules), ``webapi``
(chat, conversations, users), ``files`` (uploads, file host), ``views`` (modals, triggers),
``socketmode`` (websocket, acks), ``interactions`` (user actions, response_url),
``server`` (the app and ``connected_app``).
"""

from tests.fakeslack.model import (
    ACK_DEADLINE_S,
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    DEFAULT_SCOPES,
    FILE_INPUT_MAX_BYTES,
    HOOK_MAX_USES,
    HOOK_TTL_S,
    TRIGGER_TTL_S,
    EphemeralMessage,
    FakeChannel,
    FakeMessage,
    FakeUser,
    FakeWorkspace,
    Json,
    SlackFile,
)
from tests.fakeslack.records import Ack, EnvelopeRecord, OpenedView, ResponseHook, UploadRecord
from tests.fakeslack.server import FakeSlack, Fault, connected_app, run_fake_slack
from tests.fakeslack.views import FileInputRejected
from tests.fakeslack.wire import DEFAULT_RATES, Rate, RecordedRequest, SlackError

__all__ = [
    "ACK_DEADLINE_S",
    "DEFAULT_APP_TOKEN",
    "DEFAULT_BOT_TOKEN",
    "DEFAULT_RATES",
    "DEFAULT_SCOPES",
    "FILE_INPUT_MAX_BYTES",
    "HOOK_MAX_USES",
    "HOOK_TTL_S",
    "TRIGGER_TTL_S",
    "Ack",
    "EnvelopeRecord",
    "EphemeralMessage",
    "FakeChannel",
    "FakeMessage",
    "FakeSlack",
    "FakeUser",
    "FakeWorkspace",
    "Fault",
    "FileInputRejected",
    "Json",
    "OpenedView",
    "Rate",
    "RecordedRequest",
    "ResponseHook",
    "SlackError",
    "SlackFile",
    "UploadRecord",
    "connected_app",
    "run_fake_slack",
]

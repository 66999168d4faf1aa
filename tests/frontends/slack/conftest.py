"""The Slack front-end fixtures (`front_workspace`, `slack`, `wan`) for this folder only: the
Discord tests have a `wan` of their own, and a plugin registered from a test module would be
global."""

from tests.slack_front_support import front_workspace, slack, wan

__all__ = ["front_workspace", "slack", "wan"]

"""The running Discord bot fixture (`wan`) for this folder only: the Slack tests have a `wan`
of their own."""

from tests.discord_support import wan

__all__ = ["wan"]

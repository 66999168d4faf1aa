"""`stack`: a Discord stack (fake Discord, simulator, store) for the front-end tests here and
below. Each chat's `wan` fixture lives in its own folder's conftest: a plugin registered from
a test module would be global, and the Slack and Discord `wan` would collide."""

from tests.discord_support import stack

__all__ = ["stack"]

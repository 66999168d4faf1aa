"""One logging format for the whole bot, and a filter that keeps secrets out of it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Replaces any configured secret in a record's final text with a marker."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(s in text for s in self.secrets):
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


class RedactTokens(logging.Filter):
    """Masks interaction and webhook tokens in Discord URLs: discord.py names the URL in its
    request lines, and an interaction's or webhook's URL carries its token."""

    URL_TOKEN = re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?]+")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = self.URL_TOKEN.sub(r"\1***", text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


# Loggers that would write tokens, prompts or SQL parameters below these levels: aiosqlite
# logs every call with its parameters at DEBUG, discord.py logs request bodies and gateway
# events (with interaction tokens) at DEBUG.
QUIET = {"aiosqlite": logging.WARNING, "discord": logging.INFO}
URL_LOGGERS = ("discord.http", "discord.webhook.async_")


def setup_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once: our format, our level, secrets masked."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactSecrets(secrets))
    handler.addFilter(RedactTokens())  # whatever logger a URL comes through
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name, floor in QUIET.items():
        logging.getLogger(name).setLevel(max(floor, root.level))
    for name in URL_LOGGERS:  # on the loggers: the masking holds for every handler
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())

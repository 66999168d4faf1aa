"""A slash command's text as a request: links, `name=value` options and the prompt.

`/kf2v <https://a/1.png> <https://a/2.png> resolution=480P seed=7 a cat looks up`: links fill
the command's media inputs in order; options use the Discord option names; whatever is left is
the prompt. Slack sends links as `<url>` or `<url|label>` and escapes `& < >` as entities.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from bot.errors import InputError
from bot.frontends.common.options import INPUTS
from bot.provider.catalog import Command

LINK = re.compile(r"<(https?://[^|>\s]+)(?:\|[^>]*)?>")
BARE_LINK = re.compile(r"^https?://\S+$")
# name=value, name="several words" or name=“several words” (Slack may curl the quotes)
TOKEN = re.compile(r'(?P<name>[a-z_]+)=(?:"(?P<q>[^"]*)"|“(?P<c>[^”]*)”|(?P<v>\S+))|(?P<w>\S+)')
OPTIONS = ("model", "resolution", "duration", "mode", "seed", "prompt_extend", "watermark",
           "private", "roles", "size", "negative_prompt")
FLAGS = ("prompt_extend", "watermark", "private")
YES = frozenset({"yes", "true", "on", "1"})
NO = frozenset({"no", "false", "off", "0"})


@dataclass(frozen=True)
class CommandText:
    links: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None


def parse(text: str) -> CommandText:
    """Split the text into links, options and the prompt (InputError on a bad option)."""
    links: list[str] = []
    options: dict[str, Any] = {}
    words: list[str] = []
    for token in TOKEN.finditer(LINK.sub(lambda m: f" {m.group(1)} ", text)):
        if token["name"] in OPTIONS:
            raw = next(v for v in (token["q"], token["c"], token["v"]) if v is not None)
            options[token["name"]] = _value(token["name"], html.unescape(raw))
            continue
        word = html.unescape(token.group(0))
        (links if BARE_LINK.match(word) else words).append(word)
    return CommandText(links, options, " ".join(words) or None)


def _value(name: str, raw: str) -> Any:
    if name in FLAGS:
        if raw.lower() in YES:
            return True
        if raw.lower() in NO:
            return False
        raise InputError(name, f"say yes or no (got {raw!r}).")
    if name == "seed":
        if not raw.isdigit():
            raise InputError("seed", f"a whole number, 0 or more (got {raw!r}).")
        return int(raw)
    return raw


def links_by_field(command: Command, links: list[str]) -> dict[str, list[str]]:
    """Links fill the command's media inputs in order (reference: all of them, 1-3)."""
    fields = list(INPUTS[command])
    if command is Command.REFERENCE:
        return {fields[0]: links}
    if len(links) > len(fields):
        names = ", ".join(option.name for option in INPUTS[command].values())
        raise InputError("links", f"/{command} takes at most {len(fields)} links ({names}).")
    return {name: [link] for name, link in zip(fields, links, strict=False)}

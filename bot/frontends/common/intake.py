"""Turns what a person asked for (any front end) into a checked JobRequest.

Cheap checks first (model, options, prompt lengths, how many inputs; `most_seconds` gives
front ends what the request can cost before they check limits), then every input is fetched,
probed and prepared at once. Anything wrong raises InputError naming the option the
person typed; nothing has been spent by then.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.engine import Display, JobRequest
from bot.errors import InputError
from bot.media.prepare import MediaContext, MediaSource, Prepared, prepare
from bot.media.probe import VideoInfo
from bot.provider import catalog
from bot.provider.catalog import Command, MediaKind, Model


@dataclass(frozen=True)
class Owner:
    """Who asked and where the answer goes, in platform-neutral ids."""

    platform: str
    team_id: str
    channel_id: str
    user_id: str


@dataclass(frozen=True)
class Ask:
    """A request as typed: inputs keyed by the body field they fill, with the option names the
    person used (for error messages)."""

    command: Command
    model: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Sequence[MediaSource]] = field(default_factory=dict)
    option_names: Mapping[str, str] = field(default_factory=dict)  # body field -> option
    private: bool = False
    display: Display = field(default_factory=Display)


def pick(option: str, attachment: MediaSource | None, link: MediaSource | None, *,
         required: bool = True) -> list[MediaSource]:
    """Exactly one of an attachment option and its `_url` twin."""
    if attachment is not None and link is not None:
        raise InputError(option, f"give either {option} or {option}_url, not both.")
    if attachment is None and link is None:
        if required:
            raise InputError(option, f"attach a file as {option} or give a link as {option}_url.")
        return []
    return [attachment or link]  # type: ignore[list-item]


def checked(ask: Ask) -> tuple[Model, dict[str, Any]]:
    """The cheap checks (model, options, prompt lengths, how many inputs), before any input is
    fetched: the model and its parameters."""
    model = catalog.get_model(ask.model or catalog.default_model(ask.command).name, ask.command)
    many = {f.name: f.many for f in model.inputs}
    placeholders = {f: ["-"] * len(items) if many.get(f, 1) > 1 else "-"
                    for f, items in ask.inputs.items() if items}
    _with_names(ask, lambda: catalog.check_request(
        model, placeholders, ask.prompt, ask.negative_prompt, ask.options))
    return model, catalog.resolve_options(model, ask.options)


def most_seconds(ask: Ask) -> float:
    """The video-seconds the request can make at most, known before any input is fetched (so
    limits can refuse it first): a model whose video is as long as an input video counts the
    longest video that input may be."""
    model, params = checked(ask)
    longest = [f.limits.max_s or 0.0 for f in model.inputs if f.kind is MediaKind.VIDEO]
    return catalog.expected_seconds(model, params, max(longest, default=None))


async def build_request(ask: Ask, owner: Owner, ctx: MediaContext, region: str) -> JobRequest:
    model, params = checked(ask)
    prepared = await _prepare_all(ask, model, ctx, region)
    media: dict[str, Any] = {}
    for name, items in prepared.items():
        urls = [p.url for p in items]
        media[name] = urls if model.field(name).many > 1 else urls[0]
    everything = [p for items in prepared.values() for p in items]
    return JobRequest(
        platform=owner.platform, team_id=owner.team_id, channel_id=owner.channel_id,
        user_id=owner.user_id, command=str(ask.command), model=model.name, media=media,
        options=params, prompt=ask.prompt or None, negative_prompt=ask.negative_prompt or None,
        oss=any(p.oss for p in everything), notes=[n for p in everything for n in p.notes],
        display=dataclasses.replace(ask.display, inputs=_input_names(ask)), private=ask.private,
        expected_seconds=catalog.expected_seconds(model, params, _video_seconds(everything)),
    )


async def _prepare_all(ask: Ask, model: Model, ctx: MediaContext,
                       region: str) -> dict[str, list[Prepared]]:
    jobs: list[tuple[str, Any]] = []
    for name, items in ask.inputs.items():
        if not items:
            continue  # an optional input left out (the model may not even have it)
        spec = model.field(name)
        option = ask.option_names.get(name, name)
        for i, item in enumerate(items):
            label = f"{option}{i + 1}" if spec.many > 1 and len(items) > 1 else option
            jobs.append((name, prepare(item, spec, option=label,
                                       model_api_name=model.api_name(region), ctx=ctx)))
    tasks = [asyncio.ensure_future(coro) for _, coro in jobs]
    try:
        results = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:  # one input failed: stop the others before they upload
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    prepared: dict[str, list[Prepared]] = {}
    for (name, _), result in zip(jobs, results, strict=True):
        prepared.setdefault(name, []).append(result)
    return prepared


def _with_names(ask: Ask, check: Any) -> Any:
    """Run a catalog check, renaming body fields in its error to the options people typed."""
    try:
        return check()
    except InputError as exc:
        option = ask.option_names.get(exc.option, exc.option)
        raise InputError(option, exc.message) from None


def _input_names(ask: Ask) -> dict[str, str]:
    names = {}
    for name, items in ask.inputs.items():
        option = ask.option_names.get(name, name)
        names[option] = ", ".join(item.label for item in items)
    return names


def _video_seconds(prepared: Sequence[Prepared]) -> float | None:
    videos = [p.info.duration_s for p in prepared if isinstance(p.info, VideoInfo)]
    return videos[0] if videos else None

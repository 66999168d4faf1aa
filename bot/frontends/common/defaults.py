"""A team's defaults applied to what a person asked for, where they gave no value."""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.frontends.common.intake import Ask
from bot.frontends.common.teams import TeamSettings
from bot.provider import catalog
from bot.provider.catalog import Model


def with_defaults(ask: Ask, team: TeamSettings) -> Ask:
    """The team's default model and options where the person gave none, each only if the
    chosen model takes it (a default that does not fit is left out, not an error)."""
    defaults = team.defaults.get(str(ask.command), {})
    names = {m.name for m in catalog.models_for(ask.command)}
    wanted = defaults.get("model")
    model_name = ask.model or (wanted if wanted in names else None)
    model = catalog.get_model(model_name or catalog.default_model(ask.command).name,
                              ask.command)
    options = dict(ask.options)
    for name, value in defaults.items():
        if name != "model" and options.get(name) is None:
            fitted = _fit(model, name, value)
            if fitted is not None:
                options[name] = fitted
    return dataclasses.replace(ask, model=model_name, options=options)


def _fit(model: Model, name: str, value: Any) -> Any:
    """A stored default as the model's option takes it; None if it does not take it."""
    option = model.options.get(name)
    if option is None or option.kind not in (str, int):
        return None
    try:
        converted = option.kind(value)
    except ValueError:
        return None
    return None if option.choices and converted not in option.choices else converted

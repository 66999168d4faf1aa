"""Request bodies from the catalog: defaults, regional names, and every bad value refused."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import REGIONS
from bot.errors import InputError
from bot.provider import catalog
from bot.provider.catalog import MODELS, SEED_MAX, Command, Model, Option

LINK = "https://example.com/input"
# The option a refusal names when it differs from the parameter's name.
NAMED_AS: dict[str, str] = {}  # errors name the option as the body does


def media_for(model: Model) -> dict[str, str | list[str]]:
    """One link per input (a list for inputs that take several)."""
    return {f.name: [LINK] * f.many if f.many > 1 else LINK for f in model.inputs}


def prompt_for(model: Model) -> str | None:
    return None if model.prompt_max is None else "a prompt"


def build(model: Model, region: str = "singapore", **kw: Any) -> dict[str, Any]:
    options = kw.pop("options", {})
    media = kw.pop("media", media_for(model))
    prompt = kw.pop("prompt", prompt_for(model))
    return catalog.build_body(model, region, media, prompt, options=options, **kw)


def bad_values(opt: Option) -> list[Any]:
    """Values each kind of option must refuse."""
    if opt.kind is bool:
        return ["yes", 1]
    if opt.kind is int:
        values: list[Any] = ["5", 2.5, True]
        if opt.choices:
            values.append(max(opt.choices) + 1)
        if opt.min is not None:
            values += [opt.min - 1, (opt.max or 0) + 1]
        return values
    if opt.kind is list:
        return [["sky"]]
    return ["not-a-choice", 720]


CASES = [
    pytest.param(model, opt, value, id=f"{model.name}-{opt.name}-{value!r}")
    for model in MODELS.values()
    for opt in model.options.values()
    for value in bad_values(opt)
]


@pytest.mark.parametrize("model", MODELS.values(), ids=lambda m: m.name)
@pytest.mark.parametrize("region", REGIONS)
def test_defaults_are_filled(model: Model, region: str) -> None:
    """Each model's body names it as the region does and sends every default."""
    body = build(model, region)
    assert body["model"] == model.api_name(region)
    for opt in model.options.values():
        where = body["input" if opt.in_input else "parameters"]
        if opt.default is not None and opt.send_default:
            assert where[opt.name] == opt.default
        else:
            assert opt.name not in where
    assert {k: body["input"][k] for k in model.fixed_input} == dict(model.fixed_input)
    assert all(body["input"][f.name] for f in model.inputs if f.required)


@pytest.mark.parametrize(
    ("name", "region", "api_name"),
    [
        ("wan2.1-kf2v-plus", "beijing", "wanx2.1-kf2v-plus"),
        ("wan2.1-kf2v-plus", "singapore", "wan2.1-kf2v-plus"),
        ("wan2.1-i2v-turbo", "beijing", "wanx2.1-i2v-turbo"),
        ("wanx2.1-vace-plus", "singapore", "wan2.1-vace-plus"),
        ("wanx2.1-vace-plus", "virginia", "wan2.1-vace-plus"),
        ("wanx2.1-vace-plus", "beijing", "wanx2.1-vace-plus"),
    ],
)
def test_region_names(name: str, region: str, api_name: str) -> None:
    """Regional spellings go into the body, and look back up to the same entry."""
    model = MODELS[name]
    assert build(model, region)["model"] == api_name
    assert catalog.get_model(api_name) is model
    assert catalog.model_for_api_name(api_name) is model


@pytest.mark.parametrize(("model", "opt", "value"), CASES)
def test_bad_option_is_refused(model: Model, opt: Option, value: Any) -> None:
    """Every option refuses a wrong value with an InputError naming it."""
    media = media_for(model)
    if opt.name == "obj_or_bg":
        media["ref_images_url"] = [LINK]
    with pytest.raises(InputError) as caught:
        build(model, media=media, options={opt.name: value})
    assert caught.value.option == NAMED_AS.get(opt.name, opt.name)


@pytest.mark.parametrize("model", MODELS.values(), ids=lambda m: m.name)
def test_good_choices_are_accepted(model: Model) -> None:
    """Every listed choice of every option builds a body."""
    for opt in model.options.values():
        for choice in opt.choices or ():
            if opt.kind is list:
                continue
            assert build(model, options={opt.name: choice})["parameters"][opt.name] == choice


@pytest.mark.parametrize("model", MODELS.values(), ids=lambda m: m.name)
def test_unknown_option_is_refused(model: Model) -> None:
    """An option the model does not take is named in the refusal."""
    with pytest.raises(InputError) as caught:
        build(model, options={"fps": 24})
    assert caught.value.option == "fps"


@pytest.mark.parametrize("model", MODELS.values(), ids=lambda m: m.name)
def test_required_inputs(model: Model) -> None:
    """A missing required input, too many links, or a foreign input are refused by name."""
    for f in model.inputs:
        if f.required:
            with pytest.raises(InputError) as caught:
                build(model, media={k: v for k, v in media_for(model).items() if k != f.name})
            assert caught.value.option == f.name
        with pytest.raises(InputError) as caught:
            build(model, media={**media_for(model), f.name: [LINK] * (f.many + 1)})
        assert caught.value.option == f.name
    with pytest.raises(InputError) as caught:
        build(model, media={**media_for(model), "mask_url": LINK})
    assert caught.value.option == "mask_url"


@pytest.mark.parametrize("model", MODELS.values(), ids=lambda m: m.name)
def test_prompt_limits(model: Model) -> None:
    """Prompts over the limit, or on a model without prompts, are refused by name."""
    if model.prompt_max is None:
        with pytest.raises(InputError) as caught:
            build(model, prompt="dance")
        assert caught.value.option == "prompt"
        return
    with pytest.raises(InputError) as caught:
        build(model, prompt="x" * (model.prompt_max + 1))
    assert caught.value.option == "prompt"
    assert build(model, prompt="x" * model.prompt_max)["input"]["prompt"]
    if model.negative_prompt_max is not None:
        with pytest.raises(InputError) as caught:
            build(model, negative_prompt="x" * (model.negative_prompt_max + 1))
        assert caught.value.option == "negative_prompt"


def test_reference_needs_a_prompt() -> None:
    """VACE image_reference refuses an empty prompt."""
    with pytest.raises(InputError) as caught:
        build(MODELS["wanx2.1-vace-plus"], prompt="  ")
    assert caught.value.option == "prompt"


def test_roles_must_match_the_images() -> None:
    """obj_or_bg needs one role per image and at most one background."""
    model = MODELS["wanx2.1-vace-plus"]
    media = {"ref_images_url": [LINK, LINK]}
    assert build(model, media=media, options={"obj_or_bg": ["obj", "bg"]})
    for roles in (["obj"], ["bg", "bg"]):
        with pytest.raises(InputError):
            build(model, media=media, options={"obj_or_bg": roles})


def test_seed_bounds() -> None:
    """0 and 2147483647 are seeds; the body only carries a seed when one is given."""
    model = MODELS["wan2.2-kf2v-flash"]
    assert build(model, options={"seed": 0})["parameters"]["seed"] == 0
    assert build(model, options={"seed": SEED_MAX})["parameters"]["seed"] == SEED_MAX


def test_get_model_refuses_other_commands() -> None:
    """A model of another command, or none, is an InputError on "model"."""
    for name, command in (("wan2.2-kf2v-flash", Command.I2V), ("wan9", None)):
        with pytest.raises(InputError) as caught:
            catalog.get_model(name, command)
        assert caught.value.option == "model"


def test_result_url_paths() -> None:
    """Animate keeps its link under results; the others at the top of output."""
    assert catalog.result_url(MODELS["wan2.2-animate-mix"], {"results": {"video_url": "u"}}) == "u"
    assert catalog.result_url(MODELS["wan2.2-i2v-flash"], {"video_url": "v"}) == "v"
    assert catalog.result_url(MODELS["wan2.2-i2v-flash"], {}) is None

"""The Wan video models as data: endpoints, inputs, options, limits; request bodies built from them.

Figures come from the provider's documents in ../shared/seeds/. Where two documents about the
same model disagree we take the stricter figure, so nothing the provider would reject is paid for
(wan2.1-kf2v-plus appears in one document only and keeps its figures). Prompts over the limit are
refused rather than silently cut, as the provider would, so the person sees what was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from enum import StrEnum
from typing import Any

from bot.errors import InputError
from bot.units import MiB

SEED_MAX = 2_147_483_647
KF2V_ENDPOINT = "services/aigc/image2video/video-synthesis"
I2V_ENDPOINT = "services/aigc/video-generation/video-synthesis"
BEIJING = timezone(timedelta(hours=8))  # the provider's timestamps are UTC+8
OSS_HEADER = "X-DashScope-OssResourceResolve"  # `enable`: the provider reads oss:// inputs


class Command(StrEnum):
    KF2V = "kf2v"  # first and last frame to video
    I2V = "i2v"  # first frame (and optional audio) to video
    ANIMATE = "animate"  # a person image moved by a reference video
    REFERENCE = "reference"  # 1-3 reference images to video (VACE)


class MediaKind(StrEnum):
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"


@dataclass(frozen=True)
class MediaLimits:
    """What the provider accepts for one input; None means the documents set no limit."""

    kind: MediaKind
    formats: frozenset[str]  # as probed: jpeg png bmp webp tiff wav mp3 mp4 mov avi
    max_bytes: int
    min_px: int | None = None
    max_px: int | None = None
    min_s: float | None = None
    max_s: float | None = None
    min_ratio: float | None = None  # width / height
    max_ratio: float | None = None
    alpha: bool = True  # False: the provider refuses images with an alpha channel


@dataclass(frozen=True)
class InputField:
    """One media input of a model, as named in the request body's `input` object."""

    name: str
    limits: MediaLimits
    required: bool = True
    many: int = 1  # >1: the body holds a list of up to this many URLs
    accepts_data_url: bool = False  # the documents allow data:{mime};base64,... here

    @property
    def kind(self) -> MediaKind:
        return self.limits.kind


@dataclass(frozen=True)
class Option:
    """One value of the body's `parameters` object (or of `input`, where `in_input`)."""

    name: str
    kind: type
    default: Any = None
    choices: tuple[Any, ...] | None = None
    min: int | None = None
    max: int | None = None
    send_default: bool = True  # send the default explicitly so a summary shows what was asked
    in_input: bool = False  # the model's reference lists it under `input`, not `parameters`


@dataclass(frozen=True)
class Model:
    name: str
    command: Command
    endpoint: str
    inputs: tuple[InputField, ...]
    options: Mapping[str, Option]
    prompt_max: int | None = 800
    negative_prompt_max: int | None = 500
    prompt_required: bool = False
    result_path: tuple[str, ...] = ("video_url",)
    default_concurrency: int = 2
    region_names: Mapping[str, str] = field(default_factory=dict)
    fixed_input: Mapping[str, Any] = field(default_factory=dict)
    video_seconds: int | None = 5  # None: as long as the reference video

    def api_name(self, region: str) -> str:
        """The model name the given region knows it by."""
        return self.region_names.get(region, self.name)

    def field(self, name: str) -> InputField:
        return next(f for f in self.inputs if f.name == name)

    @property
    def input_options(self) -> frozenset[str]:
        """The options a create body carries in `input` rather than `parameters`."""
        return frozenset(name for name, opt in self.options.items() if opt.in_input)


IMAGE_FORMATS = frozenset({"jpeg", "png", "bmp", "webp"})

# kf2v-flash's own document says 360-2000 px; the general reference says 240-8000: take both.
KF2V_IMAGE = MediaLimits(MediaKind.IMAGE, IMAGE_FORMATS, 10 * MiB, 360, 2000, alpha=False)
KF2V_PLUS_IMAGE = MediaLimits(MediaKind.IMAGE, IMAGE_FORMATS, 10 * MiB, 240, 8000, alpha=False)
I2V_IMAGE = MediaLimits(MediaKind.IMAGE, IMAGE_FORMATS, 10 * MiB, 360, 2000, alpha=False)
I2V_AUDIO = MediaLimits(MediaKind.AUDIO, frozenset({"wav", "mp3"}), 15 * MiB, min_s=3, max_s=30)
ANIMATE_IMAGE = MediaLimits(
    MediaKind.IMAGE, IMAGE_FORMATS, 5 * MiB, 200, 4096, min_ratio=1 / 3, max_ratio=3
)
ANIMATE_VIDEO = MediaLimits(
    MediaKind.VIDEO,
    frozenset({"mp4", "mov", "avi"}),
    200 * MiB,
    200,
    2048,
    min_s=2,
    max_s=30,
    min_ratio=1 / 3,
    max_ratio=3,
)
REFERENCE_IMAGE = MediaLimits(
    MediaKind.IMAGE, IMAGE_FORMATS | {"tiff"}, 10 * MiB, 360, 2000
)


def _resolution(choices: tuple[str, ...], default: str) -> Option:
    return Option("resolution", str, default, choices)


def _common(*extra: Option) -> dict[str, Option]:
    """Options every Wan video model takes, plus the model's own."""
    base = [
        Option("prompt_extend", bool, True),
        Option("watermark", bool, False),
        Option("seed", int, None, min=0, max=SEED_MAX, send_default=False),
    ]
    return {o.name: o for o in (*base, *extra)}


FIXED_DURATION = Option("duration", int, 5, (5,), send_default=False)  # documented, fixed at 5


def _kf2v(name: str, image: MediaLimits, res: tuple[str, ...], **kw: Any) -> Model:
    data = kw.pop("data", False)
    inputs = tuple(
        InputField(name, image, accepts_data_url=data)
        for name in ("first_frame_url", "last_frame_url")
    )
    options = _common(_resolution(res, "720P"), FIXED_DURATION)
    return Model(name, Command.KF2V, KF2V_ENDPOINT, inputs, options, **kw)


def _i2v(
    name: str, res: tuple[str, ...], default_res: str, durations: tuple[int, ...], **kw: Any
) -> Model:
    audio = kw.pop("audio", False)
    inputs = [InputField("img_url", I2V_IMAGE, accepts_data_url=True)]
    options = [_resolution(res, default_res), Option("duration", int, 5, durations)]
    if audio:
        inputs.append(InputField("audio_url", I2V_AUDIO, required=False))
        options.append(Option("audio", bool, True))
    return Model(name, Command.I2V, I2V_ENDPOINT, tuple(inputs), _common(*options), **kw)


def _animate(name: str) -> Model:
    inputs = (InputField("image_url", ANIMATE_IMAGE), InputField("video_url", ANIMATE_VIDEO))
    options = {
        "mode": Option("mode", str, "wan-std", ("wan-std", "wan-pro")),
        "check_image": Option("check_image", bool, True),
        # Unlike the other models, the animate reference puts watermark in `input`.
        "watermark": Option("watermark", bool, False, in_input=True),
    }
    return Model(
        name,
        Command.ANIMATE,
        KF2V_ENDPOINT,
        inputs,
        options,
        prompt_max=None,
        negative_prompt_max=None,
        result_path=("results", "video_url"),
        default_concurrency=1,
        video_seconds=None,
    )


VACE_SIZES = ("1280*720", "720*1280", "960*960", "832*1088", "1088*832")


def _reference(name: str, **kw: Any) -> Model:
    inputs = (InputField("ref_images_url", REFERENCE_IMAGE, many=3),)
    options = _common(
        Option("size", str, "1280*720", VACE_SIZES),
        FIXED_DURATION,
        Option("obj_or_bg", list, None, ("obj", "bg"), send_default=False),
    )
    return Model(
        name,
        Command.REFERENCE,
        I2V_ENDPOINT,
        inputs,
        options,
        prompt_required=True,
        fixed_input={"function": "image_reference"},
        **kw,
    )


ALL_RES = ("480P", "720P", "1080P")

_MODELS: tuple[Model, ...] = (
    _kf2v("wan2.2-kf2v-flash", KF2V_IMAGE, ALL_RES, data=True),
    _kf2v(
        "wan2.1-kf2v-plus",
        KF2V_PLUS_IMAGE,
        ("720P",),
        region_names={"beijing": "wanx2.1-kf2v-plus"},
    ),
    _i2v(
        "wan2.5-i2v-preview",
        ALL_RES,
        "1080P",
        (5, 10),
        audio=True,
        prompt_max=2000,
        default_concurrency=5,
    ),
    _i2v("wan2.2-i2v-plus", ("480P", "1080P"), "1080P", (5,)),
    _i2v("wan2.2-i2v-flash", ALL_RES, "720P", (5,)),
    _i2v(
        "wan2.1-i2v-turbo",
        ("480P", "720P"),
        "720P",
        (3, 4, 5),
        region_names={"beijing": "wanx2.1-i2v-turbo"},
    ),
    _i2v(
        "wan2.1-i2v-plus", ("720P",), "720P", (5,), region_names={"beijing": "wanx2.1-i2v-plus"}
    ),
    _animate("wan2.2-animate-mix"),
    _animate("wan2.2-animate-move"),
    _reference(
        "wanx2.1-vace-plus",
        region_names={"singapore": "wan2.1-vace-plus", "virginia": "wan2.1-vace-plus"},
    ),
)

MODELS: dict[str, Model] = {m.name: m for m in _MODELS}
# Region spellings resolve to the same entry, so a user may type either.
ALIASES: dict[str, str] = {
    alias: m.name for m in _MODELS for alias in m.region_names.values() if alias != m.name
}


def models_for(command: Command | str) -> list[Model]:
    return [m for m in _MODELS if m.command == Command(command)]


def option_values(command: Command | str, option: str) -> list[Any]:
    """Every value any of a command's models allows for an option, in catalog order."""
    values: list[Any] = []
    for model in models_for(command):
        opt = model.options.get(option)
        for value in (opt.choices or ()) if opt else ():
            if value not in values:
                values.append(value)
    return values


def default_model(command: Command | str) -> Model:
    return models_for(command)[0]


def get_model(name: str, command: Command | str | None = None) -> Model:
    """The entry for a model name (either regional spelling); InputError if unknown."""
    model = MODELS.get(ALIASES.get(name, name))
    if model is None or (command is not None and model.command != Command(command)):
        allowed = ", ".join(m.name for m in (models_for(command) if command else _MODELS))
        raise InputError("model", f"`{name}` is not a model this command can use. Try: {allowed}.")
    return model


def model_for_api_name(api_name: str) -> Model | None:
    """Look a model up by whatever name a request carried (the simulator uses this)."""
    return MODELS.get(ALIASES.get(api_name, api_name))


def _check_option(model: Model, opt: Option, value: Any) -> Any:
    if opt.kind is bool:
        if not isinstance(value, bool):
            raise InputError(opt.name, "must be true or false.")
        return value
    if opt.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InputError(opt.name, "must be a whole number.")
    if opt.kind is list:
        if not isinstance(value, list):
            raise InputError(opt.name, "must be a list.")
        return value
    if opt.choices is not None and opt.kind is not list and value not in opt.choices:
        allowed = ", ".join(str(c) for c in opt.choices)
        raise InputError(opt.name, f"{model.name} supports {allowed} (got {value}).")
    if opt.min is not None and not opt.min <= value <= (opt.max or value):
        raise InputError(opt.name, f"must be between {opt.min} and {opt.max}.")
    return value


def resolve_options(model: Model, options: Mapping[str, Any]) -> dict[str, Any]:
    """Every option the model takes, defaults filled in, each checked; unknown ones refused."""
    unknown = [k for k, v in options.items() if v is not None and k not in model.options]
    if unknown:
        raise InputError(unknown[0], f"{model.name} does not take this option.")
    resolved: dict[str, Any] = {}
    for name, opt in model.options.items():
        value = options.get(name)
        if value is None:
            if opt.default is not None and opt.send_default:
                resolved[name] = opt.default
            continue
        resolved[name] = _check_option(model, opt, value)
    return resolved


def _check_text(name: str, text: str | None, limit: int | None, required: bool) -> None:
    if required and not (text and text.strip()):
        raise InputError(name, "is required for this model.")
    if text and limit is None:
        raise InputError(name, "this model does not take one.")
    if text and limit is not None and len(text) > limit:
        raise InputError(name, f"is {len(text)} characters; the limit is {limit}.")


def _check_roles(roles: list[str] | None, image_count: int) -> None:
    if roles is None:
        return
    if len(roles) != image_count:
        raise InputError("obj_or_bg", f"give one role per image ({image_count}), each obj or bg.")
    if any(r not in ("obj", "bg") for r in roles):
        raise InputError("obj_or_bg", "each role must be obj or bg.")
    if roles.count("bg") > 1:
        raise InputError("obj_or_bg", "at most one image can be the background (bg).")


def _check_media(model: Model, media: Mapping[str, str | list[str]]) -> None:
    for f in model.inputs:
        value = media.get(f.name)
        if isinstance(value, list) and f.many == 1:
            raise InputError(f.name, "takes one link, not a list.")
        count = len(value) if isinstance(value, list) else int(bool(value))
        if f.required and count == 0:
            raise InputError(f.name, "is required for this model.")
        if count > f.many:
            raise InputError(f.name, f"takes at most {f.many}.")
    extra = {k for k, v in media.items() if v} - {f.name for f in model.inputs}
    if extra:
        raise InputError(sorted(extra)[0], f"{model.name} does not take this input.")


def check_request(
    model: Model,
    media: Mapping[str, str | list[str]],
    prompt: str | None,
    negative_prompt: str | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """Check everything but the media bytes; return the resolved parameters."""
    _check_text("prompt", prompt, model.prompt_max, model.prompt_required)
    _check_text("negative_prompt", negative_prompt, model.negative_prompt_max, False)
    _check_media(model, media)
    params = resolve_options(model, options)
    if model.command is Command.REFERENCE:
        refs = media.get("ref_images_url") or []
        _check_roles(params.get("obj_or_bg"), len(refs))
    return params


def build_body(
    model: Model,
    region: str,
    media: Mapping[str, str | list[str]],
    prompt: str | None = None,
    negative_prompt: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a create-task request; InputError before anything is sent."""
    params = check_request(model, media, prompt, negative_prompt, options or {})
    body_input: dict[str, Any] = dict(model.fixed_input)
    if prompt:
        body_input["prompt"] = prompt
    if negative_prompt:
        body_input["negative_prompt"] = negative_prompt
    body_input.update({k: v for k, v in media.items() if v})
    body_input.update({k: params.pop(k) for k in sorted(model.input_options & params.keys())})
    return {"model": model.api_name(region), "input": body_input, "parameters": params}


def result_url(model: Model, output: Mapping[str, Any]) -> str | None:
    """Where this model's task output keeps the video link."""
    node: Any = output
    for key in model.result_path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, str) and node else None


def expected_seconds(model: Model, params: Mapping[str, Any], video_s: float | None) -> float:
    """How many video-seconds a job will produce (and be billed for)."""
    if model.video_seconds is None:
        return float(video_s or 0)
    return float(params.get("duration", model.video_seconds))

"""What the simulator checks and serves: request bodies, input media, uploads, result videos.

Create bodies are checked with `bot.provider.catalog` (one table for the bot and the simulator). The
simulator checks input the way the provider does after accepting a task: it downloads every
link, decodes it, and fails the task with `InvalidParameter` when the media breaks a limit of
the model (`bot.provider.catalog.MediaLimits`). Uploads follow the provider's temporary-file flow: a
policy from `GET /uploads?action=getPolicy`, then an OSS-style form POST, giving `oss://{key}`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import io
import json
import secrets
import struct
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

import aiohttp
import av
from aiohttp import BodyPartReader, web
from PIL import Image, UnidentifiedImageError

from bot.errors import InputError
from bot.provider.catalog import (
    BEIJING,
    InputField,
    MediaKind,
    MediaLimits,
    Model,
    check_request,
)

INVALID = "InvalidParameter"
# Inputs the official `dashscope` SDK adds to every create body: the deprecated prompt switch, and
# `function` set to its own API's name (a model with a function of its own needs that one).
SDK_INPUTS = ("extend_prompt", "function")
SDK_FUNCTION = "video-synthesis"
CHUNK = 64 * 1024
MIB = 1024 * 1024
UPLOAD_MAX_MB = 100
UPLOAD_KEEP_S = 48 * 3600.0  # temporary uploads live 48 h
POLICY_TTL_S = 300
OSS_KEY_ID = "LTAI-sim-upload"
# Pillow's names for what the catalog calls jpeg etc.; phones write JPEGs as MPO.
PIL_FORMATS = {"mpo": "jpeg", "jpg": "jpeg", "tif": "tiff"}
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


class MediaError(Exception):
    """Input the simulated provider cannot use; the text becomes the task's failure message."""


class Refuse(Exception):
    """An error answer: JSON like DashScope's, or XML like OSS's."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: float | None = None,
                 *, oss: bool = False) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.retry_after_s, self.oss = retry_after_s, oss

    def response(self) -> web.Response:
        if self.oss:
            xml = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{self.code}</Code>"
                   f"<Message>{self.message}</Message><RequestId>{rid()}</RequestId></Error>")
            return web.Response(status=self.status, text=xml, content_type="application/xml")
        headers = {} if self.retry_after_s is None else {"Retry-After": f"{self.retry_after_s:g}"}
        body = {"code": self.code, "message": self.message, "request_id": rid()}
        return web.json_response(body, status=self.status, headers=headers)


def rid() -> str:
    return str(uuid4())


def fmt_time(ts: float | None) -> str:
    """The provider's time format: UTC+8, `YYYY-MM-DD HH:mm:ss.SSS`."""
    return datetime.fromtimestamp(ts or 0, BEIJING).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


# --- input media ---------------------------------------------------------------------------------


def decode_data_url(url: str) -> bytes:
    """The bytes of a `data:{mime};base64,{data}` URL."""
    head, sep, payload = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise MediaError("a data: URL must look like data:{MIME_type};base64,{base64_data}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError("the base64 data in the data: URL is not valid") from exc


async def fetch(
    session: aiohttp.ClientSession, url: str, max_bytes: int, timeout_s: float
) -> bytes:
    """Download `url` as the provider would: a time limit, and no more than `max_bytes`."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status >= 400:
                raise MediaError(f"downloading {url} failed: HTTP {resp.status}")
            data = bytearray()
            async for chunk in resp.content.iter_chunked(CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    raise MediaError(f"{url} is larger than {max_bytes // MIB} MB")
            return bytes(data)
    except TimeoutError as exc:
        raise MediaError(f"downloading {url} timed out") from exc
    except aiohttp.ClientError as exc:
        raise MediaError(f"downloading {url} failed: {type(exc).__name__}") from exc


def check(data: bytes, limits: MediaLimits) -> float | None:
    """Raise MediaError if `data` breaks `limits`; the duration in seconds for audio and video."""
    if len(data) > limits.max_bytes:
        raise MediaError(f"the file is larger than {limits.max_bytes // MIB} MB")
    if limits.kind is MediaKind.IMAGE:
        _check_image(data, limits)
        return None
    return _check_av(data, limits)


async def inspect(
    inputs: Sequence[InputField],
    media: Mapping[str, list[str]],
    load: Callable[[InputField, str], Awaitable[bytes]],
) -> float | None:
    """Check every input link of a task; the reference video's length, if there is one."""
    seconds = None
    for f in inputs:
        for url in media.get(f.name, []):
            try:
                found = check(await load(f, url), f.limits)
            except MediaError as exc:
                raise MediaError(f"{f.name}: {exc}") from exc
            seconds = found if f.kind is MediaKind.VIDEO else seconds
    return seconds


def _check_image(data: bytes, limits: MediaLimits) -> None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = (img.format or "").lower()
            width, height = img.size
            alpha = img.mode in ALPHA_MODES or "transparency" in img.info
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise MediaError("the file is not an image the service can read") from exc
    fmt = PIL_FORMATS.get(fmt, fmt)
    if fmt not in limits.formats:
        raise MediaError(f"image format {fmt or 'unknown'} is not one of {_names(limits)}")
    _check_size(width, height, limits)
    if alpha and not limits.alpha:
        raise MediaError("images with an alpha (transparency) channel are not supported")


def _check_av(data: bytes, limits: MediaLimits) -> float:
    try:
        with av.open(io.BytesIO(data)) as container:
            name = container.format.name
            seconds = (container.duration or 0) / 1_000_000
            video = container.streams.video[0] if container.streams.video else None
            size = (video.codec_context.width, video.codec_context.height) if video else None
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise MediaError(f"the file is not {limits.kind} the service can read") from exc
    if not set(name.split(",")) & limits.formats:
        raise MediaError(f"{limits.kind} format {name} is not one of {_names(limits)}")
    if limits.kind is MediaKind.VIDEO:
        if size is None:
            raise MediaError("the file has no video stream")
        _check_size(*size, limits)
    low, high = limits.min_s or 0, limits.max_s or float("inf")
    if not low <= seconds <= high:
        raise MediaError(f"{limits.kind} lasts {seconds:.1f} s; it must last {low:g}-{high:g} s")
    return seconds


def _check_size(width: int, height: int, limits: MediaLimits) -> None:
    low, high = limits.min_px or 1, limits.max_px or 1_000_000
    if not (low <= width <= high and low <= height <= high):
        raise MediaError(
            f"{limits.kind} is {width}x{height} px; width and height must be {low}-{high} px"
        )
    low_ratio, high_ratio = limits.min_ratio or 0.0, limits.max_ratio or float("inf")
    if not low_ratio <= width / height <= high_ratio:
        raise MediaError(
            f"{limits.kind} aspect ratio {width / height:.2f} is outside "
            f"{low_ratio:.2f}-{high_ratio:.2f} (width / height)"
        )


def _names(limits: MediaLimits) -> str:
    return ", ".join(sorted(limits.formats))


# --- requests ------------------------------------------------------------------------------------


async def json_body(request: web.Request) -> dict[str, Any]:
    """A create request's JSON object, or the 400 the provider gives."""
    if request.content_type != "application/json":
        raise Refuse(400, INVALID, "Content-Type must be application/json.")
    try:
        body = await request.json()
    except ValueError as exc:
        raise Refuse(400, INVALID, "The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise Refuse(400, INVALID, "The request body must be a JSON object.")
    return body


def validate(
    model: Model, body: dict[str, Any]
) -> tuple[str | None, dict[str, Any], dict[str, list[str]]]:
    """Check a create body with the catalog; (prompt, parameters with defaults, media URLs)."""
    given, params = body.get("input"), body.get("parameters", {})
    if not isinstance(given, dict) or not isinstance(params, dict):
        raise Refuse(400, INVALID, "input and parameters must be JSON objects.")
    _check_sdk_fields(model, given)
    # The provider cuts long prompts to length instead of refusing them.
    prompt = _clip(given.get("prompt"), model.prompt_max)
    negative = _clip(given.get("negative_prompt"), model.negative_prompt_max)
    options = {**params, **_input_options(model, given, params)}
    not_media = {"prompt", "negative_prompt", *SDK_INPUTS, *model.fixed_input,
                 *model.input_options}
    media = {k: v for k, v in given.items() if k not in not_media}
    try:
        resolved = check_request(model, media, prompt, negative, options)
    except InputError as exc:
        raise Refuse(400, INVALID, str(exc)) from exc
    return prompt, resolved, _urls(media)


def _check_sdk_fields(model: Model, given: dict[str, Any]) -> None:
    """The official SDK always sends `extend_prompt` (a bool) and `function` (its own name,
    unless the caller sets the model's); anything else in them is an error."""
    for key, value in model.fixed_input.items():
        if given.get(key) != value:
            raise Refuse(400, INVALID, f"input.{key} must be {value!r} for this model.")
    extend = given.get("extend_prompt")
    if extend is not None and not isinstance(extend, bool):
        raise Refuse(400, INVALID, "input.extend_prompt must be true or false.")
    function = given.get("function")
    if "function" not in model.fixed_input and function not in (None, SDK_FUNCTION):
        raise Refuse(400, INVALID, f"input.function {function!r} is not a function of "
                     f"{model.name}.")


def _input_options(model: Model, given: dict[str, Any], params: dict[str, Any]
                   ) -> dict[str, Any]:
    """Options the model's reference puts in `input`; in `parameters` they are refused."""
    misplaced = sorted(model.input_options & params.keys())
    if misplaced:
        raise Refuse(400, INVALID, f"parameters.{misplaced[0]}: {model.name} takes it in "
                     "input, not parameters.")
    return {k: given[k] for k in model.input_options if k in given}


def _clip(text: Any, limit: int | None) -> str | None:
    if text is not None and not isinstance(text, str):
        raise Refuse(400, INVALID, "prompt and negative_prompt must be strings.")
    return text[:limit] if text and limit is not None else None


def _urls(media: dict[str, Any]) -> dict[str, list[str]]:
    urls: dict[str, list[str]] = {}
    for name, value in media.items():
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(u, str) and u for u in items):
            raise Refuse(400, INVALID, f"input.{name} must be a URL or a list of URLs.")
        urls[name] = items
    return urls


def uses_oss(media: dict[str, list[str]]) -> bool:
    return any(u.startswith("oss://") for urls in media.values() for u in urls)


# --- result videos -------------------------------------------------------------------------------


@functools.cache
def result_mp4() -> bytes:
    """The video every successful task returns: small, real H.264 in MP4, made once."""
    return make_mp4(160, 96, seconds=1.0, fps=8)


def make_mp4(width: int, height: int, *, seconds: float, fps: int = 8) -> bytes:
    """A real H.264 MP4 of grey frames growing lighter (tests also use it as input video)."""
    buf = io.BytesIO()
    frames = max(1, round(seconds * fps))
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "40"}
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([64 + (i * 160) // frames]) * plane.buffer_size)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buf.getvalue()


def make_wav(seconds: float, rate: int = 8000) -> bytes:
    """A silent mono 16-bit WAV (tests use it as i2v audio input)."""
    size = round(seconds * rate) * 2
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + struct.pack("<I", 16) + fmt \
        + b"data" + struct.pack("<I", size) + bytes(size)


def padding(size: int) -> Iterator[bytes]:
    """An MP4 `free` box of exactly `size` bytes (>= 8), in chunks: players skip it."""
    if size < 8:
        return
    if size < 2**32:
        head = struct.pack(">I4s", size, b"free")
    else:  # a 64-bit "largesize" box
        head = struct.pack(">I4sQ", 1, b"free", size)
    yield head
    left = size - len(head)
    zeros = bytes(CHUNK)
    while left > 0:
        yield zeros[: min(left, CHUNK)]
        left -= CHUNK


async def send_video(request: web.Request, video: bytes, size: int) -> web.StreamResponse:
    """Stream `video`, padded to `size` bytes when that is at least 8 more, never held whole."""
    pad = size - len(video) if size - len(video) >= 8 else 0
    response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    response.content_length = len(video) + pad
    await response.prepare(request)
    await response.write(video)
    for chunk in padding(pad):
        await response.write(chunk)
    await response.write_eof()
    return response


# --- temporary uploads ---------------------------------------------------------------------------


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    model: str  # the model name the upload policy was asked for
    expires_at: float
    account: str = ""  # the key (its id) that asked for the policy: only its tasks read it


@dataclass
class _Policy:
    upload_dir: str
    model: str
    expires_at: float
    account: str = ""


class UploadStore:
    """Upload policies handed out and the files posted with them, like the provider's OSS."""

    def __init__(self) -> None:
        self.objects: dict[str, StoredObject] = {}
        self._policies: dict[str, _Policy] = {}
        self._secret = secrets.token_bytes(16)

    def new_policy(self, model: str, now: float, upload_host: str, account: str = ""
                   ) -> dict[str, object]:
        """The `data` of a getPolicy answer: lets one file be posted under a fresh folder."""
        day = datetime.fromtimestamp(now, BEIJING).strftime("%Y-%m-%d")
        upload_dir = f"dashscope-instant/{secrets.token_hex(8)}/{day}/{uuid4()}"
        doc = {"expiration": fmt_time(now + POLICY_TTL_S), "conditions": [
            ["content-length-range", 0, UPLOAD_MAX_MB * MIB], ["starts-with", "$key", upload_dir]]}
        policy = base64.b64encode(json.dumps(doc).encode()).decode()
        self._policies[policy] = _Policy(upload_dir, model, now + POLICY_TTL_S, account)
        return {
            "policy": policy, "signature": self._sign(policy), "upload_dir": upload_dir,
            "upload_host": upload_host, "expire_in_seconds": POLICY_TTL_S,
            "max_file_size_mb": UPLOAD_MAX_MB, "capacity_limit_mb": 999_999,
            "oss_access_key_id": OSS_KEY_ID, "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        }

    async def accept(self, request: web.Request, now: float) -> web.Response:
        """Handle the form POST to `upload_host`."""
        fields, upload = await _read_form(request, UPLOAD_MAX_MB * MIB)
        policy = self._verify(fields, now)
        key = fields.get("key", "")
        if not key.startswith(policy.upload_dir + "/"):
            raise Refuse(403, "AccessDenied", "Invalid according to Policy: Policy Condition "
                         "failed: key does not start with upload_dir.", oss=True)
        if upload is None:
            raise Refuse(400, "InvalidArgument", "The POST request has no file.", oss=True)
        if key in self.objects and fields.get("x-oss-forbid-overwrite") == "true":
            raise Refuse(409, "FileAlreadyExists", "The object you specified already exists "
                         "and can not be overwritten.", oss=True)
        self.objects[key] = StoredObject(*upload, policy.model, now + UPLOAD_KEEP_S,
                                         policy.account)
        status = int(fields.get("success_action_status", "204"))
        return web.Response(status=status if status in (200, 201) else 204)

    def load(self, url: str, model: str, now: float, account: str = "") -> bytes:
        """The bytes behind `oss://{key}`, if uploaded for `model` by the same account (the
        provider reads an upload only for the key that made it) and not expired."""
        obj = self.objects.get(url.removeprefix("oss://"))
        if obj is None or now >= obj.expires_at or obj.account != account:
            raise MediaError(f"{url} does not exist or has expired")
        if obj.model != model:
            raise MediaError(f"{url} was uploaded for model {obj.model}, not {model}")
        return obj.data

    def _sign(self, policy: str) -> str:
        digest = hmac.new(self._secret, policy.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    def _verify(self, fields: dict[str, str], now: float) -> _Policy:
        text = fields.get("policy", "")
        policy = self._policies.get(text)
        signed = hmac.compare_digest(fields.get("Signature", ""), self._sign(text))
        if policy is None or not signed or fields.get("OSSAccessKeyId") != OSS_KEY_ID:
            raise Refuse(403, "SignatureDoesNotMatch", "The request signature we calculated "
                         "does not match the signature you provided.", oss=True)
        if now >= policy.expires_at:
            raise Refuse(403, "AccessDenied", "Invalid according to Policy: Policy expired.",
                         oss=True)
        return policy


async def _read_form(
    request: web.Request, max_bytes: int
) -> tuple[dict[str, str], tuple[bytes, str] | None]:
    """The text fields of an OSS form POST and the file; like OSS, fields after it are ignored."""
    if not request.content_type.startswith("multipart/"):
        raise Refuse(400, "InvalidArgument", "The body must be multipart/form-data.", oss=True)
    reader, fields = await request.multipart(), {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.name:
            continue
        if part.name == "file":
            return fields, (await _read_part(part, max_bytes), part.headers.get("Content-Type", ""))
        fields[part.name] = await part.text()
    return fields, None


async def _read_part(part: BodyPartReader, max_bytes: int) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise Refuse(400, "EntityTooLarge", "Your proposed upload exceeds the maximum "
                         "allowed size.", oss=True)
    return bytes(data)

"""Media made on the spot for tests and benches; big images without ever holding their pixels."""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps

CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples a pixel (8 bits each)


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _rows(width: int, height: int, colour_type: int, value: int) -> Iterator[bytes]:
    row = b"\0" + bytes([value]) * (width * CHANNELS[colour_type])  # filter type 0, one colour
    for _ in range(height):
        yield row


def flat_png(width: int, height: int, colour_type: int = 2, value: int = 200) -> bytes:
    """A real, single-colour PNG (RGB by default) compressed a row at a time: an 8944×8944 one
    is ~311 kB on the wire and 320 MB decoded, and making it never holds more than a row."""
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for row in _rows(width, height, colour_type, value))
    idat += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def video(fmt: str, size: tuple[int, int], seconds: float, fps: int = 2, audio: bool = False):
    """A tiny real video (mpeg4; the container is what matters) of `seconds` at `fps`."""
    out = io.BytesIO()
    with av.open(out, "w", format=fmt) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame(size[0], size[1], "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([i * 40 % 256]) * plane.buffer_size)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def detailed_video(path: str | Path, width: int, height: int, seconds: float, *, fps: int = 24,
                   audio: bool = False, crf: int = 12, grain: float = 0.0) -> Path:
    """A real H.264 MP4 with detail and motion the encoder must work for: a textured landscape
    (soft noise, gradients, text) panning one way, a textured disc crossing it the other way
    while it grows (motion no single vector describes), a moving caption; `grain`: film grain
    of that standard deviation, new every frame. Encoded near-losslessly (so a 5 s 1080P clip
    is well over 10 MiB); with `audio`, a 440 Hz AAC tone beside it."""
    scene = _scene(width * 3 // 2 + 16, height + 16)
    sprite = _scene(height // 2, height // 2).transpose(Image.Transpose.ROTATE_90)
    # Grain drawn afresh for 7 frames, then again in turn: the encoder's references (a frame or
    # two back at "veryfast") never hold the same grain, and the clip is made much faster.
    grains = [Image.effect_noise((width, height), grain).convert("RGB")
              for _ in range(7 if grain else 0)]
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": str(crf)}
        sound = _tone_stream(container) if audio else None
        frames = round(seconds * fps)
        for i in range(frames):
            picture = _frame(scene, sprite, (width, height), i, frames)
            if grains:
                picture = ImageChops.add(picture, grains[i % len(grains)], offset=-128)
            frame = av.VideoFrame.from_image(picture)
            container.mux(stream.encode(frame.reformat(format="yuv420p")))
        container.mux(stream.encode(None))
        if sound is not None:
            _write_tone(container, sound, seconds)
    return path


def _scene(width: int, height: int) -> Image.Image:
    """A still larger than the frame: blurred noise in colour over gradients, and text."""
    base = Image.merge("RGB", [Image.effect_noise((width, height), 60 + 20 * c).filter(
        ImageFilter.GaussianBlur(1.2)) for c in range(3)])
    gradient = Image.linear_gradient("L").resize((width, height))
    tinted = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_90).resize(
        (width, height)), ImageOps.invert(gradient)))
    scene = Image.blend(base, tinted, 0.5)
    draw = ImageDraw.Draw(scene)
    font = ImageFont.load_default(size=max(12, height // 30))
    step = max(24, height // 12)
    for y in range(0, height, step):
        draw.text(((y * 7) % 50, y), "wanbot fit test " * (width // (step * 2) + 1),
                  fill=(255 - y % 256, y % 256, 128), font=font)
    return scene


def _frame(scene: Image.Image, sprite: Image.Image, size: tuple[int, int], i: int,
           frames: int) -> Image.Image:
    """The scene panned right and a little down, the disc crossing left as it grows, and a
    caption."""
    width, height = size
    x = (scene.width - width) * i // max(1, frames - 1)
    y = (8 + round(6 * ((i % 48) / 48 - 0.5)))
    frame = scene.crop((x, y, x + width, y + height))
    side = max(8, round(sprite.width * (0.6 + 0.8 * i / max(1, frames))))
    disc = sprite.resize((side, side), Image.Resampling.BILINEAR)
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, side - 1, side - 1), fill=255)
    frame.paste(disc, (width - side - (width - side) * i // max(1, frames), height // 4), mask)
    draw = ImageDraw.Draw(frame)
    size = max(16, height // 10)
    draw.text((width - (i * width // max(1, frames)) % width, height // 2), f"frame {i}",
              fill=(255, 255, 255), font=ImageFont.load_default(size=size))
    return frame


def _tone_stream(container: Any) -> Any:
    sound = container.add_stream("aac", rate=48000)
    sound.layout = "mono"
    return sound


def _write_tone(container: Any, sound: Any, seconds: float) -> None:
    period = [round(8000 * math.sin(2 * math.pi * k / 109)) for k in range(109)]  # ~440 Hz
    chunk = 1024
    samples = round(seconds * 48000)
    for start in range(0, samples, chunk):
        n = min(chunk, samples - start)
        pcm = struct.pack(f"<{n}h", *(period[(start + k) % 109] for k in range(n)))
        frame = av.AudioFrame(format="s16", layout="mono", samples=n)
        frame.planes[0].update(pcm)
        frame.sample_rate, frame.pts = 48000, start
        container.mux(sound.encode(frame))
    container.mux(sound.encode(None))

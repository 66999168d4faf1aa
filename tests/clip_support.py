"""Real clips made with PyAV for the Extend and stitching tests: moving, detailed pictures (not
a flat colour), so a frame can be told from its neighbours and encoders have real work."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

RAMP = bytes(range(256)) * 16  # a long ramp: each row of a frame is a slice of it


def clip(size: tuple[int, int] = (480, 368), *, seconds: float = 1.0, fps: int = 8,
         codec: str = "libx264", audio: bool = False, seed: int = 0,
         options: dict[str, str] | None = None) -> bytes:
    """An MP4 of diagonal stripes that move a little every frame (and a tone, with `audio`)."""
    width, height = size
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = options or {"preset": "ultrafast"}
        sound = container.add_stream("aac", rate=48_000, layout="stereo") if audio else None
        for i in range(round(seconds * fps)):
            frame = _frame(width, height, i * 5 + seed * 41)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            _tone(container, sound, seconds)
    return out.getvalue()


def _frame(width: int, height: int, shift: int) -> av.VideoFrame:
    luma = b"".join(RAMP[(y * 3 + shift) % 256:][:width] for y in range(height))
    chroma = bytes([(shift * 7) % 256]) * (width // 2 * height // 2)
    image = Image.frombytes("L", (width, height), luma)
    frame = av.VideoFrame.from_image(image.convert("RGB")).reformat(format="yuv420p")
    frame.planes[1].update(chroma[: frame.planes[1].buffer_size].ljust(
        frame.planes[1].buffer_size, b"\x80"))
    return frame


def _tone(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
          seconds: float) -> None:
    total = round(seconds * 48_000)
    for start in range(0, total, 1024):
        count = min(1024, total - start)
        frame = av.AudioFrame(format="s16", layout="stereo", samples=count)
        frame.planes[0].update(bytes((start + n) * 13 % 256 for n in range(count * 4)))
        frame.sample_rate, frame.pts = 48_000, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_clip(path: Path, **kwargs: object) -> Path:
    path.write_bytes(clip(**kwargs))  # type: ignore[arg-type]
    return path


def frames_of(video: Path) -> int:
    with av.open(str(video)) as container:
        return sum(1 for _ in container.decode(video=0))


def last_image(video: Path) -> Image.Image:
    """The last frame, decoded from the start (independent of `bot.media.frames`)."""
    last = None
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            last = frame
    assert last is not None
    return last.to_image()


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """The mean absolute difference of two same-size images, per channel value (0-255)."""
    assert a.size == b.size, (a.size, b.size)
    pa, pb = a.convert("RGB").tobytes(), b.convert("RGB").tobytes()
    return sum(abs(x - y) for x, y in zip(pa, pb, strict=True)) / len(pa)


def received_image(sim: object, body: dict[str, object], field: str) -> Image.Image:
    """The image the simulator was given as `field` of a create body (an upload it kept)."""
    url = str(body["input"][field])  # type: ignore[index]
    stored = sim.uploads.objects[url.removeprefix("oss://")]  # type: ignore[attr-defined]
    return Image.open(io.BytesIO(stored.data))

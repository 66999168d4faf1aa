"""Media benchmark: peak memory of probing (and repairing) inputs. Run by hand, not in CI:
`python bench/media.py` (add --json for one object per case).

Each case runs in its own process three ways, so every peak is its own: `ours` (probe, then
repair_image when it is an image, on the default MEDIA_WORKERS=2 pool: what `prepare` does after
the download), and two baselines measured in the same run: `whole` (Pillow's plain
`Image.open().load()`, each input on the default executor as probes ran before) and `old` (the
previous path: decode in the probe, decode again in the repair, `exif_transpose` copy, counting
frames, then resize). Peak RSS above baseline: the child resets the kernel's high-water mark
(/proc/self/clear_refs) once its inputs are in memory, and reads it (VmHWM) at the end; the
baseline is the RSS at the reset (psutil). Targets (issue 9): any accepted input <= 150 MB, ten
hostile images at once <= 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from bot.errors import InputError  # noqa: E402
from bot.media.probe import ImageInfo, probe, repair_image  # noqa: E402
from bot.provider.catalog import MediaKind, get_model  # noqa: E402
from tests.media_support import flat_png, video  # noqa: E402

MiB = 1024 * 1024
FIELDS = {
    "i2v": get_model("wan2.2-i2v-flash").field("img_url"),  # 360-2000 px, no alpha
    "kf2v-plus": get_model("wan2.1-kf2v-plus").field("first_frame_url"),  # up to 8000 px
    "reference": get_model("wanx2.1-vace-plus").field("ref_images_url"),
    "animate-video": get_model("wan2.2-animate-mix").field("video_url"),
}
# name, input file, field, copies at once, target MB above baseline
CASES = [
    ("PNG 8000x8000 RGB, shrunk for i2v", "rgb8000.png", "i2v", 1, 150),
    ("PNG 8000x8000 RGB, checked for kf2v-plus", "rgb8000.png", "kf2v-plus", 1, 150),
    ("PNG 8000x8000 RGBA, flattened for kf2v-plus", "rgba8000.png", "kf2v-plus", 1, 150),
    ("JPEG 8000x8000, shrunk for i2v", "rgb8000.jpg", "i2v", 1, 150),
    ("progressive JPEG 4000x4000 4:4:4, shrunk for i2v", "prog4000.jpg", "i2v", 1, 150),
    ("hostile progressive JPEG 8000x8000 4:4:4 (refused)", "prog8000.jpg", "i2v", 1, 150),
    ("WEBP 2500x2500 (decoded whole), shrunk for i2v", "rgb2500.webp", "i2v", 1, 150),
    ("hostile PNG 8944x8944 (refused)", "bomb8944.png", "reference", 1, 150),
    ("GIF with 800k frames, converted for i2v", "frames.gif", "i2v", 1, 150),
    ("MP4 1280x720 10 s, probed for animate", "clip.mp4", "animate-video", 1, 150),
    ("ten hostile PNGs 8000x8000 at once, i2v", "rgb8000.png", "i2v", 10, 300),
    ("ten progressive JPEGs 4000x4000 at once, i2v", "prog4000.jpg", "i2v", 10, 300),
]


# --- inputs -------------------------------------------------------------------------------


def _saved(picture: Image.Image, fmt: str, **save: Any) -> bytes:
    out = io.BytesIO()
    picture.save(out, fmt, **save)
    return out.getvalue()


def _many_frames_gif(frames: int) -> bytes:
    """A 400x400 first frame, then `frames` 1x1 frames of 15 bytes each (12 MB for 800k)."""
    first = _saved(Image.new("P", (400, 400), 0), "GIF")[:-1]  # without the trailer
    tiny = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return first + tiny * frames + b"\x3b"


def make_inputs(folder: Path) -> None:
    (folder / "rgb8000.png").write_bytes(flat_png(8000, 8000))
    (folder / "rgba8000.png").write_bytes(flat_png(8000, 8000, colour_type=6))
    (folder / "bomb8944.png").write_bytes(flat_png(8944, 8944))
    big = Image.new("RGB", (8000, 8000), "teal")
    (folder / "rgb8000.jpg").write_bytes(_saved(big, "JPEG"))
    (folder / "prog8000.jpg").write_bytes(_saved(big, "JPEG", progressive=True, subsampling=0))
    del big
    progressive = _saved(Image.new("RGB", (4000, 4000), "teal"), "JPEG", progressive=True,
                         subsampling=0)
    (folder / "prog4000.jpg").write_bytes(progressive)
    webp = _saved(Image.new("RGB", (2500, 2500), "teal"), "WEBP", lossless=True)
    (folder / "rgb2500.webp").write_bytes(webp)
    (folder / "frames.gif").write_bytes(_many_frames_gif(800_000))
    (folder / "clip.mp4").write_bytes(video("mp4", (1280, 720), 10, fps=10))


# --- the three ways, in a child process -------------------------------------------------------


def _whole(data: bytes, target: int) -> None:
    with Image.open(io.BytesIO(data)) as picture:
        picture.load()


def _old(data: bytes, target: int) -> None:
    with Image.open(io.BytesIO(data)) as picture:  # the probe's decode
        picture.load()
    with Image.open(io.BytesIO(data)) as source:  # the repair's
        source.load()
        getattr(source, "n_frames", 1)
        picture = ImageOps.exif_transpose(source)
    if max(picture.size) > target:
        scale = target / max(picture.size)
        size = (round(picture.width * scale), round(picture.height * scale))
        picture = picture.convert("RGB").resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


async def _ours(data: bytes | Path, field: str) -> str:
    limits = FIELDS[field].limits
    try:
        info = await probe(data, limits, option="input")
        if isinstance(info, ImageInfo) and isinstance(data, bytes):
            _, info, _ = await repair_image(data, info, limits, option="input")
    except InputError as exc:
        return f"refused: {exc.message[:48]}"
    size = f" {info.width}x{info.height}" if hasattr(info, "width") else ""
    return f"{info.format}{size}"


async def _run(way: str, inputs: list[Any], field: str) -> str:
    if way == "ours":
        return (await asyncio.gather(*(_ours(content, field) for content in inputs)))[0]
    work = _whole if way == "whole" else _old
    target = FIELDS[field].limits.max_px or 8000
    try:
        await asyncio.gather(*(asyncio.to_thread(work, data, target) for data in inputs))
    except Exception as exc:  # a baseline that cannot decode says so
        return f"failed: {type(exc).__name__}"
    return "decoded"


def child(way: str, field: str, path: Path, copies: int) -> None:
    video = FIELDS[field].kind is MediaKind.VIDEO  # probed from the file, as prepare does
    inputs = [path if video else path.read_bytes() for _ in range(copies)]
    Image.init()
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from here
    baseline = psutil.Process().memory_info().rss
    started = time.perf_counter()
    outcome = asyncio.run(_run(way, inputs, field))
    seconds = time.perf_counter() - started
    status = Path("/proc/self/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    peak_mb = (hwm * 1024 - baseline) / MiB
    print(json.dumps({"peak_mb": round(peak_mb, 1), "seconds": round(seconds, 2),
                      "outcome": outcome}))


# --- the parent -------------------------------------------------------------------------------


def measure(way: str, field: str, path: Path, copies: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", way, field, str(path), str(copies)],
        capture_output=True, text=True, timeout=600,
    )
    if done.returncode != 0:
        return {"peak_mb": None, "seconds": None, "outcome": done.stderr.strip()[-80:]}
    return json.loads(done.stdout)


def _ratio(base: float | None, ours: float | None, floor: float) -> str:
    """How many times the baseline's figure ours is (floored, so a zero reads as the floor)."""
    if base is None or ours is None:
        return "-"
    return f"{base / max(ours, floor):.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        way, field, path, copies = args.child
        child(way, field, Path(path), int(copies))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="wanbot-bench-") as raw:
        folder = Path(raw)
        make_inputs(folder)
        for name, file, field, copies, target in CASES:
            ways = ("ours",) if file.endswith(".mp4") else ("ours", "whole", "old")
            row = {way: measure(way, field, folder / file, copies) for way in ways}
            results.append({"case": name, "target_mb": target, **row})
            if not args.json:
                _print_row(name, target, row)
    if args.json:
        print(json.dumps(results, indent=1))


def _print_row(name: str, target: int, row: dict[str, dict[str, Any]]) -> None:
    ours = row["ours"]
    verdict = "ok" if ours["peak_mb"] is not None and ours["peak_mb"] <= target else "OVER"
    print(f"{name}\n  ours  {ours['peak_mb']:>7} MB {ours['seconds']:>6} s  {ours['outcome']}"
          f"  [target <= {target} MB: {verdict}]")
    for label in ("whole", "old"):
        if base := row.get(label):
            memory = _ratio(base["peak_mb"], ours["peak_mb"], 1.0)
            seconds = _ratio(base["seconds"], ours["seconds"], 0.01)
            print(f"  {label:5} {base['peak_mb']:>7} MB {base['seconds']:>6} s  {base['outcome']}"
                  f"  ({label}/ours: memory {memory}, time {seconds})")


if __name__ == "__main__":
    main()

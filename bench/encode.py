"""Encode benchmark: a finished video fitted to an upload limit. Run by hand, not in CI:
`python bench/encode.py` (add --json for `{"cases": [...]}`).

For 5 s and 10 s clips at 480P, 720P and 1080P (24 fps, with sound), made here with real motion
and detail (a textured scene panning one way, a textured disc crossing it the other way as it
grows, a moving caption, film grain; encoded near-losslessly, so 5 s of 1080P is ~100 MiB), it
reports in one run: the encode time as a multiple of the clip's duration (and its CPU time,
which other load on the machine does not change),
the output size against the limit (never above it; at least 90% of it), the quality as PSNR
(luma, against the original, the output scaled back to the original's size when it stepped
down), and the encode's peak memory. 1080P goes into Discord's 10 MiB; 720P and 480P into
limits with the same bits per pixel (10 MiB times their share of 1080P's pixels), so every
resolution gets the same work, and the 10 s clips have half the bits per pixel of the 5 s ones.
Goal: PSNR >= 35 dB for 5 s of 1080P into 10 MiB.

Each fit runs in its own process, alone: the peak is that process's resident high-water mark
(VmHWM, reset once its imports are done), the interpreter and PyAV's libraries included, so it
is what an encode worker needs; the figure above the process's baseline is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import psutil  # noqa: E402
from PIL import Image, ImageChops  # noqa: E402

from bot.media.encode import fit_video  # noqa: E402
from tests.media_support import detailed_video  # noqa: E402

MiB = 1024 * 1024
FPS = 24
SIZES = {"480P": (832, 480), "720P": (1280, 720), "1080P": (1920, 1080)}
LIMIT_1080P = 10 * MiB
PSNR_GOAL_DB = 35.0
MASTER_CRF = 8  # the clips' own quality: near-lossless, as a provider's result is
GRAIN = 2.0  # film grain's standard deviation in the clips (levels of 255): detail no motion
# vector predicts, as in camera footage; it alone caps PSNR near 42 dB if an encoder drops it


def limit_for(resolution: str) -> int:
    """10 MiB for 1080P; the same bits per pixel for the smaller ones."""
    width, height = SIZES[resolution]
    return round(LIMIT_1080P * width * height / (1920 * 1080))


# --- one fit, in a child process ---------------------------------------------------------------


class _Attempts(logging.Handler):
    """The sizes of each encode of a fit, from the line fit_video logs per step."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[list[int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) == 4 and isinstance(args[2], list):
            self.sizes.append(list(args[2]))


def child(src: Path, dst: Path, limit: int) -> None:
    attempts = _Attempts()
    logging.getLogger("bot.media.encode").addHandler(attempts)
    logging.getLogger("bot.media.encode").setLevel(logging.INFO)
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from here
    baseline = psutil.Process().memory_info().rss
    started, cpu = time.perf_counter(), time.process_time()
    fitted = fit_video(src, dst, limit)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    status = Path("/proc/self/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    print(json.dumps({
        "encode_s": round(seconds, 2), "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(hwm / 1024, 1),
        "above_baseline_mb": round((hwm * 1024 - baseline) / MiB, 1),
        "out_bytes": fitted.size_bytes if fitted else None,
        "height": fitted.height if fitted else None, "encodes": attempts.sizes,
    }))


def fit_in_child(src: Path, dst: Path, limit: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", str(src), str(dst), str(limit)],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-400:])
    return json.loads(done.stdout)


# --- quality -------------------------------------------------------------------------------------


def _lumas(path: Path, size: tuple[int, int]) -> Any:
    """Each frame's luma as a Pillow image of `size` (scaled up when the file is smaller)."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            plane = frame.reformat(format="gray").planes[0]
            image = Image.frombuffer("L", (frame.width, frame.height), bytes(plane), "raw", "L",
                                     plane.line_size, 1)
            yield image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)


def psnr_db(original: Path, fitted: Path, size: tuple[int, int]) -> float:
    """PSNR of the luma over the whole clip (squared errors summed from difference
    histograms, so no pixel is visited in Python)."""
    squared, pixels = 0, 0
    for a, b in zip(_lumas(original, size), _lumas(fitted, size), strict=True):
        histogram = ImageChops.difference(a, b).histogram()
        squared += sum(count * value * value for value, count in enumerate(histogram))
        pixels += size[0] * size[1]
    mse = squared / max(1, pixels)
    return 99.0 if mse == 0 else 10 * math.log10(255 * 255 / mse)


# --- the run -------------------------------------------------------------------------------------


def run_case(folder: Path, resolution: str, seconds: float) -> dict[str, Any]:
    width, height = SIZES[resolution]
    src = detailed_video(folder / f"{resolution}-{seconds:g}s.mp4", width, height, seconds,
                         fps=FPS, audio=True, crf=MASTER_CRF, grain=GRAIN)
    limit = limit_for(resolution)
    dst = folder / f"{resolution}-{seconds:g}s-fit.mp4"
    measured = fit_in_child(src, dst, limit)
    fitted = measured["out_bytes"] is not None and dst.exists()
    return {
        "resolution": resolution, "seconds": seconds, "limit_bytes": limit,
        "out_bytes": measured["out_bytes"],
        "psnr_db": round(psnr_db(src, dst, (width, height)), 2) if fitted else None,
        "encode_s": measured["encode_s"], "peak_rss_mb": measured["peak_rss_mb"],
        "_source_bytes": src.stat().st_size, "_height": measured["height"],
        "_above_baseline_mb": measured["above_baseline_mb"], "_encodes": measured["encodes"],
        "_cpu_s": measured["cpu_s"],
    }


def _print_case(case: dict[str, Any]) -> None:
    out, limit = case["out_bytes"], case["limit_bytes"]
    fill = f"{out / limit:.1%}" if out else "-"
    verdict = "ok" if out and 0.9 * limit <= out <= limit else "MISS"
    goal = ""
    if case["resolution"] == "1080P" and case["seconds"] == 5:
        goal = f"  [goal >= {PSNR_GOAL_DB} dB: " \
               f"{'ok' if (case['psnr_db'] or 0) >= PSNR_GOAL_DB else 'MISS'}]"
    print(f"{case['resolution']:>5} {case['seconds']:>4g} s  {case['_source_bytes'] / MiB:5.1f}"
          f" MiB -> {(out or 0) / MiB:5.2f} MiB of {limit / MiB:5.2f} ({fill}, {verdict}) at "
          f"{case['_height']}p  PSNR {case['psnr_db']} dB  encode {case['encode_s']} s = "
          f"{case['encode_s'] / case['seconds']:.2f}x the clip (CPU {case['_cpu_s']} s)  "
          f"peak {case['peak_rss_mb']} MB "
          f"({case['_above_baseline_mb']} above baseline)  encodes (bytes): {case['_encodes']}"
          f"{goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        src, dst, limit = args.child
        child(Path(src), Path(dst), int(limit))
        return
    cases = []
    with tempfile.TemporaryDirectory(prefix="wanbot-bench-") as raw:
        for resolution in SIZES:
            for seconds in (5.0, 10.0):
                case = run_case(Path(raw), resolution, seconds)
                cases.append(case)
                if not args.json:
                    _print_case(case)
    if args.json:
        public = [{k: v for k, v in c.items() if not k.startswith("_")} for c in cases]
        print(json.dumps({"cases": public}, indent=1))


if __name__ == "__main__":
    main()

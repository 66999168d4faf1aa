"""Bounded media work: refused by header, decoded once in bounded memory, on a bounded pool."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from PIL import Image

from bot.config import Settings
from bot.errors import InputError
from bot.media.decode import MAX_SIDE_PX, decode, onto_white
from bot.media.pool import MediaPool
from bot.media.prepare import Link, MediaContext, prepare
from bot.media.probe import probe
from bot.provider.catalog import IMAGE_FORMATS, InputField, MediaKind, MediaLimits, get_model
from tests.media.test_prepare import Uploads, guarded_session, image
from tests.media_support import flat_png, video

ROOT = Path(__file__).resolve().parents[2]
I2V = get_model("wan2.2-i2v-flash").field("img_url")  # 360-2000 px
REFERENCE = get_model("wanx2.1-vace-plus").field("ref_images_url")
ANIMATE_VIDEO = get_model("wan2.2-animate-mix").field("video_url")
ANY_IMAGE = InputField("img_url", MediaLimits(MediaKind.IMAGE, IMAGE_FORMATS, 10 * 2**20))
MiB = 2**20


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    """The issue's image: single-colour 8944×8944 RGB, a few hundred kB, 320 MB decoded."""
    return flat_png(8944, 8944)


@pytest.fixture
async def make_ctx() -> Iterator[Callable[..., MediaContext]]:
    async with guarded_session({"127.0.0.1"}) as session:
        pools: list[MediaPool] = []

        def make(pool: MediaPool | None = None, workers: int = 2) -> MediaContext:
            settings = Settings(dashscope_api_key="k", media_handoff="url", media_workers=workers,
                                trusted_hosts=frozenset({"127.0.0.1"}))
            if pool:
                pools.append(pool)
            return MediaContext(session, settings, Uploads(), pool)

        yield make
        for pool in pools:
            pool.close()


async def refusal(url: str, field: InputField, ctx: MediaContext) -> str:
    with pytest.raises(InputError) as caught:
        await prepare(Link(url), field, option="image", model_api_name="m", ctx=ctx)
    assert caught.value.option == "image"
    return caught.value.message


class Watch:
    """Records, without changing anything, which threads enter the named functions."""

    def __init__(self, *names: str) -> None:
        self.names = set(names)
        self.calls: list[tuple[str, str]] = []  # (function, thread)

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name in self.names:
            self.calls.append((frame.f_code.co_name, threading.current_thread().name))

    def __enter__(self) -> Watch:
        threading.setprofile(self._profile)  # threads started from now on
        return self

    def __exit__(self, *exc: object) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]

    def threads(self) -> set[str]:
        return {thread for _, thread in self.calls}


# --- refused by header ------------------------------------------------------------------


def test_the_side_limit_is_the_biggest_any_model_takes():
    """The decode ceiling comes from the catalog (kf2v-plus takes 8000 px), not a blanket figure."""
    assert get_model("wan2.1-kf2v-plus").field("first_frame_url").limits.max_px == MAX_SIDE_PX


async def test_the_issues_cheap_huge_png_is_refused_by_its_size(server, make_ctx, huge_png):
    """A few hundred kB, 8944×8944 (80 MP, under the old ceiling): refused, naming the limit."""
    message = await refusal(server.add("huge.png", huge_png), REFERENCE, make_ctx())
    assert message == (
        "the image is 8944×8944 px; no model takes more than 8000 px a side, so the bot does "
        "not read it. Make it smaller and try again."
    )


async def test_the_refusal_comes_before_any_decoding(server, make_ctx, huge_png):
    """Its pixel data replaced by garbage, the refusal is still about size: nothing was decoded."""
    header_end = huge_png.index(b"IDAT") + 4
    broken = huge_png[:header_end] + os.urandom(len(huge_png) - header_end)
    message = await refusal(server.add("huge.png", broken), REFERENCE, make_ctx())
    assert message.startswith("the image is 8944×8944 px; no model takes more than 8000 px")


# --- decoded once, shrunk while decoding ---------------------------------------------------

PEAK_SCRIPT = """
import asyncio, resource, sys
from bot.media.probe import probe, repair_image
from bot.provider.catalog import get_model
data = open(sys.argv[1], "rb").read()
limits = get_model("wan2.2-i2v-flash").field("img_url").limits
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
async def main():
    info = await probe(data, limits, option="image")
    return await repair_image(data, info, limits, option="image")
_, info, notes = asyncio.run(main())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) // 1024, info.width, info.height)
"""


def test_the_largest_accepted_png_never_materialises_whole(tmp_path):
    """Repairing an 8000×8000 PNG (256 MB decoded whole) peaks under 150 MB above baseline."""
    path = tmp_path / "big.png"
    path.write_bytes(flat_png(8000, 8000))
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path)], cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=120)
    peak_mb, width, height = map(int, done.stdout.split())
    assert (width, height) == (2000, 2000)
    assert peak_mb < 150


def _png(mode: str, save: dict[str, Any]) -> bytes:
    noise = Image.frombytes("RGB", (301, 203), os.urandom(301 * 203 * 3))
    if mode == "P":
        noise = noise.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    out = io.BytesIO()
    noise.convert(mode).save(out, "PNG", **save)
    return out.getvalue()


@pytest.mark.parametrize(
    ("mode", "save"),
    [("RGB", {}), ("RGBA", {}), ("L", {}), ("LA", {}), ("1", {}), ("P", {"bits": 4}),
     ("P", {"transparency": 3}), ("RGB", {"transparency": (1, 2, 3)}), ("RGB", {"interlace": 1})],
    ids=["rgb", "rgba", "grey", "grey-alpha", "bilevel", "palette-4bit", "palette-transparent",
         "rgb-transparent", "interlaced"],
)
def test_band_decoding_gives_the_pixels_a_whole_decode_gives(mode, save):
    """Decoded a few rows at a time and shrunk, a PNG is exactly the whole decode, shrunk."""
    data = _png(mode, save)
    whole = Image.open(io.BytesIO(data))
    whole.load()
    if whole.mode not in ("L", "LA", "RGB", "RGBA") or "transparency" in whole.info:
        whole = whole.convert("RGBA" if whole.has_transparency_data else "RGB")
    banded = decode(Image.open(io.BytesIO(data)), 100, option="image", band_bytes=301 * 4 * 7)
    assert banded.tobytes() == whole.reduce(3).tobytes()


@pytest.mark.parametrize("target", [400, 100], ids=["full-size", "shrunk"])
def test_transparency_is_flattened_as_it_decodes(target):
    """Flattened band by band (and shrunk), a PNG is exactly the whole decode onto white."""
    data = _png("RGBA", {})
    whole = Image.open(io.BytesIO(data))
    whole.load()
    flat = onto_white(whole)
    expected = flat if target == 400 else flat.reduce(3)
    banded = decode(Image.open(io.BytesIO(data)), target, option="image", flatten=True,
                    band_bytes=301 * 4 * 7)
    assert banded.mode == "RGB" and banded.tobytes() == expected.tobytes()


def test_a_truncated_png_fails_in_bands_too():
    """Cut short, a PNG decoded in bands raises as a whole decode would."""
    data = _png("RGB", {})
    with pytest.raises(OSError):
        decode(Image.open(io.BytesIO(data[: len(data) // 2])), 100, option="image")


def test_a_big_jpeg_is_decoded_at_a_fraction_of_its_size():
    """A 4000×3000 JPEG for a 1000 px target decodes at 1/4 scale (draft), not whole."""
    picture = Image.open(io.BytesIO(image((4000, 3000), "JPEG")))
    assert decode(picture, 1000, option="image").size == (1000, 750)


async def test_a_format_decoded_only_whole_is_refused_over_the_budget():
    """WEBP decodes only whole, at 16 bytes a pixel: over 96 MiB of that, refused by name."""
    data = image((2600, 2600), "WEBP", lossless=True)
    with pytest.raises(InputError) as caught:
        await probe(data, get_model("wan2.1-kf2v-plus").field("first_frame_url").limits,
                    option="first_frame")
    assert caught.value.message == (
        "the image is 2600×2600 px; the bot reads WEBP images up to 6 megapixels. "
        "Save it as JPEG or PNG, or make it smaller."
    )


async def test_a_progressive_jpeg_over_the_budget_is_refused(server, make_ctx):
    """libjpeg holds a progressive JPEG's every coefficient however small it decodes: budgeted."""
    data = image((4200, 4200), "JPEG", progressive=True, subsampling=0)
    assert await refusal(server.add("p.jpg", data), I2V, make_ctx()) == (
        "the image is 4200×4200 px; the bot reads progressive JPEG images up to 17 megapixels. "
        "Save it as a standard (baseline) JPEG or PNG, or make it smaller."
    )


# --- frames ---------------------------------------------------------------------------------


def _animation(frames: int) -> bytes:
    pictures = [Image.new("RGB", (400, 400), ("red", "blue")[i % 2]) for i in range(frames)]
    out = io.BytesIO()
    pictures[0].save(out, "GIF", save_all=True, append_images=pictures[1:], duration=10)
    return out.getvalue()


async def test_frames_are_never_counted(server, make_ctx):
    """Converting a 400-frame GIF looks at most at its second frame, not all 400."""
    url = server.add("many.gif", _animation(400))
    with Watch("_seek") as watch:
        prepared = await prepare(Link(url), ANY_IMAGE, option="image", model_api_name="m",
                                 ctx=make_ctx(MediaPool(2)))
    assert prepared.notes == ("image: converted GIF (first frame) to PNG",)
    assert 0 < len(watch.calls) <= 4


# --- one bounded pool -----------------------------------------------------------------------


async def test_probes_and_repairs_run_on_the_bounded_pool(server, make_ctx):
    """Eight inputs at once (images to repair, videos): all on the pool's two threads."""
    urls = [server.add(f"i{i}.png", image((2400, 1800))) for i in range(6)]
    urls += [server.add(f"v{i}.mp4", video("mp4", (320, 240), 3)) for i in range(2)]
    ctx = make_ctx(MediaPool(2))
    with Watch("_probe_image", "_repair_image_sync", "_probe_av") as watch:
        await asyncio.gather(*(
            prepare(Link(url), ANIMATE_VIDEO if url.endswith("mp4") else I2V, option="x",
                    model_api_name="m", ctx=ctx)
            for url in urls
        ))
    assert {name for name, _ in watch.calls} == {"_probe_image", "_repair_image_sync", "_probe_av"}
    assert watch.threads() <= {"wanbot-media_0", "wanbot-media_1"}


async def test_a_busy_pool_leaves_the_loops_threads_free():
    """With every media thread busy, other thread work still runs at once."""
    pool, release = MediaPool(1), threading.Event()
    busy = asyncio.ensure_future(pool.run(release.wait))
    try:
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), timeout=10) == "free"
        assert not busy.done()
    finally:
        release.set()
        await busy
        pool.close()


async def test_contexts_share_one_pool_sized_by_the_setting(make_ctx):
    """MEDIA_WORKERS sizes the pool, and every context from the same settings shares it."""
    first, second = make_ctx(workers=3), make_ctx(workers=3)
    assert first.media_pool is second.media_pool
    assert first.media_pool.workers == 3

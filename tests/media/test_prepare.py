"""bot.media.prepare: probe, check, repair and hand over real media served by a real local
server."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import struct
import wave
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import av
import pytest
from PIL import Image

from bot.config import Settings
from bot.errors import InputError
from bot.media.fetch import PRIVATE_MESSAGE, guarded_session
from bot.media.prepare import (
    Attachment,
    Link,
    LocalFile,
    MediaContext,
    MediaSource,
    Prepared,
    prepare,
)
from bot.media.probe import AudioInfo, ImageInfo, VideoInfo, check
from bot.provider.catalog import IMAGE_FORMATS, InputField, MediaKind, MediaLimits, get_model

MiB = 1024 * 1024
KF2V = get_model("wan2.2-kf2v-flash").field("first_frame_url")  # 360-2000 px, no alpha, data: ok
KF2V_PLUS = get_model("wan2.1-kf2v-plus").field("first_frame_url")  # no data: URLs
I2V_AUDIO = get_model("wan2.5-i2v-preview").field("audio_url")  # wav/mp3, 3-30 s
ANIMATE_IMAGE = get_model("wan2.2-animate-mix").field("image_url")  # ratio 1:3..3:1
ANIMATE_VIDEO = get_model("wan2.2-animate-mix").field("video_url")  # 200-2048 px, 2-30 s
REFERENCE = get_model("wanx2.1-vace-plus").field("ref_images_url")  # tiff ok, alpha ok
HAS_MP3 = "libmp3lame" in av.codecs_available


def small_field(kind: MediaKind, max_bytes: int, formats: frozenset[str] = IMAGE_FORMATS):
    """A field with a tiny byte limit, so byte rules are tested without megabytes of data."""
    return InputField("img_url", MediaLimits(kind, formats, max_bytes), accepts_data_url=True)


# --- media made on the spot -----------------------------------------------------------------


def image(size: tuple[int, int], fmt: str = "PNG", mode: str = "RGB", **save) -> bytes:
    color = (200, 30, 30, 0) if mode == "RGBA" else "red"
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **save)
    return out.getvalue()


def noise(size: tuple[int, int], mode: str = "RGB") -> bytes:
    """Random pixels as PNG: incompressible, so its byte size is predictable."""
    bits = {"RGB": 24, "1": 1}[mode]
    raw = os.urandom(size[0] * size[1] * bits // 8)
    out = io.BytesIO()
    Image.frombytes(mode, size, raw).save(out, "PNG")
    return out.getvalue()


def gif(size: tuple[int, int], frames: int = 2) -> bytes:
    out = io.BytesIO()
    pictures = [Image.new("RGB", size, (i * 60, 0, 200)) for i in range(frames)]
    pictures[0].save(out, "GIF", save_all=True, append_images=pictures[1:])
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions: Pillow must refuse it before decoding anything."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))


def wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(rate * seconds))
    return out.getvalue()


def mp3(seconds: float, rate: int = 22050) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        fmt = stream.codec_context.format.name
        for start in range(0, int(rate * seconds), 1152):
            frame = av.AudioFrame(format=fmt, layout="mono", samples=1152)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


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


def audio_only_mp4(seconds: float) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=22050, layout="mono")
        fmt = stream.codec_context.format.name
        for start in range(0, int(22050 * seconds), 1024):
            frame = av.AudioFrame(format=fmt, layout="mono", samples=1024)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts = 22050, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


# --- fixtures -------------------------------------------------------------------------------


@dataclass
class Upload:
    model: str
    filename: str
    data: bytes
    content_type: str
    path: Path | None  # set when a file was handed over instead of bytes


class Uploads(list[Upload]):
    """Stands in for DashScope's upload (a boundary): records what it was given."""

    async def __call__(self, model: str, filename: str, content: bytes | Path, ctype: str) -> str:
        path = content if isinstance(content, Path) else None
        data = (
            content if isinstance(content, bytes) else await asyncio.to_thread(content.read_bytes)
        )
        self.append(Upload(model, filename, data, ctype, path))
        return f"oss://dashscope-instant/test/{filename}"


@pytest.fixture
def uploads() -> Uploads:
    return Uploads()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with guarded_session({"127.0.0.1"}) as s:
        yield s


@pytest.fixture
def make_ctx(session, uploads) -> Callable[..., MediaContext]:
    def make(mode: str = "url", timeout_s: float = 5.0) -> MediaContext:
        settings = Settings(
            dashscope_api_key="test-key",
            media_handoff=mode,
            trusted_hosts=frozenset({"127.0.0.1"}),
            fetch_timeout_s=timeout_s,
        )
        return MediaContext(session, settings, uploads)

    return make


@pytest.fixture
def ctx(make_ctx) -> MediaContext:
    return make_ctx()


async def run(item: MediaSource, field: InputField, ctx: MediaContext, option="input"):
    return await prepare(item, field, option=option, model_api_name="wan-test", ctx=ctx)


async def refused(item: MediaSource, field: InputField, ctx: MediaContext) -> str:
    with pytest.raises(InputError) as info:
        await run(item, field, ctx, option="first_frame")
    assert info.value.option == "first_frame"
    return info.value.message


def decoded(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


# --- images: accepted as they are -----------------------------------------------------------


async def test_a_good_image_link_is_handed_over_as_is(server, ctx, uploads):
    """Nothing to repair, auto mode: the body gets the user's own link; nothing is uploaded."""
    url = server.add("cat.png", image((800, 600)))
    prepared = await run(Link(url), KF2V, ctx)
    assert prepared == Prepared(
        "first_frame_url", url, ImageInfo("png", 800, 600, False, len(server.files["cat.png"]))
    )
    assert uploads == []


async def test_alpha_is_kept_where_the_model_takes_it(server, ctx):
    """The reference model takes transparency: no repair."""
    url = server.add("ref.png", image((600, 600), mode="RGBA"))
    prepared = await run(Link(url), REFERENCE, ctx)
    assert prepared.url == url and prepared.notes == ()
    assert prepared.info.has_alpha


async def test_tiff_is_kept_where_the_model_takes_it(server, ctx):
    """The reference model takes TIFF as it is."""
    url = server.add("ref.tif", image((600, 600), "TIFF"))
    prepared = await run(Link(url), REFERENCE, ctx)
    assert (prepared.url, prepared.info.format) == (url, "tiff")


# --- images: refused ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"definitely not an image" * 10, image((800, 600))[:300], wav(1)],
    ids=["text", "truncated-png", "wav"],
)
async def test_unreadable_images_are_refused(server, ctx, data):
    """Text, a cut-off PNG or a sound file is not an image."""
    message = await refused(Link(server.add("x.png", data)), KF2V, ctx)
    assert message == "this file is not an image Wan can read; use JPEG, PNG, BMP or WEBP."


async def test_too_small_is_refused(server, ctx):
    """Never upscaled."""
    message = await refused(Link(server.add("s.png", image((120, 90)))), KF2V, ctx)
    assert message == "the image is 120×90 px; this model needs each side between 360 and 2000 px."


async def test_too_long_and_thin_to_shrink_is_refused(server, ctx):
    """Shrinking 4000×700 to 2000 px would leave a 350 px side: refused, not damaged."""
    message = await refused(Link(server.add("l.png", image((4000, 700)))), KF2V, ctx)
    assert message == (
        "the image is 4000×700 px; shrunk to fit 2000 px its short side would be 350 px, "
        "under this model's 360 px minimum."
    )


async def test_wrong_aspect_ratio_is_refused(server, ctx):
    """Never cropped."""
    message = await refused(Link(server.add("w.png", image((1200, 300)))), ANIMATE_IMAGE, ctx)
    assert message == (
        "the image is 1200×300 px (4:1); this model needs a width-to-height ratio "
        "between 1:3 and 3:1."
    )


async def test_too_many_pixels_is_refused_before_decoding(server, ctx):
    """A 9000×9000 image is over the bot's 80-megapixel decode limit."""
    out = io.BytesIO()
    Image.new("1", (9000, 9000)).save(out, "PNG")  # a few kB on the wire, 81 MP decoded
    message = await refused(Link(server.add("big.png", out.getvalue())), KF2V, ctx)
    assert message == "the image is 9000×9000 px; the bot reads images up to 80 megapixels."


async def test_decompression_bomb_is_refused(server, ctx):
    """A header claiming 20000×20000 is refused without decoding."""
    message = await refused(Link(server.add("bomb.png", png_header_only(20000, 20000))), KF2V, ctx)
    assert message == "the image has too many pixels for the bot to read."


async def test_declared_size_over_the_cap_costs_nothing(server, ctx):
    """An attachment Discord says is 25 MB is refused before any download (cap: 2 × 10 MB)."""
    url = server.add("a.png", image((800, 600)))
    item = Attachment(url, size=25 * MiB, filename="a.png", content_type="image/png")
    assert await refused(item, KF2V, ctx) == "the file is 25 MB, over the 20 MB limit."
    assert server.hits == []


async def test_streamed_bytes_over_the_cap_are_refused(server, ctx):
    """Without a Content-Length the running total is checked."""
    server.add("n.png", noise((200, 200)))  # ~120 kB against a 2 × 20 kB cap
    item = Link(server.url("/chunked/n.png"))
    message = await refused(item, small_field(MediaKind.IMAGE, 20_000), ctx)
    assert message == "the file is over the 0.0381 MB limit."


async def test_an_image_too_big_even_as_jpeg_is_refused(server, ctx):
    """Black-and-white noise is tiny as PNG and huge as JPEG: no quality step fits."""
    data = noise((400, 400), mode="1")  # ~20 kB
    message = await refused(
        Link(server.add("bits.png", data)), small_field(MediaKind.IMAGE, 15_000), ctx
    )
    assert "even as a JPEG at quality 40; this model takes at most 0.0143 MB." in message


# --- images: repaired, each with its note ---------------------------------------------------


async def test_alpha_is_flattened_onto_white(server, ctx, uploads):
    """A transparent PNG for a model that refuses alpha: flattened, noted, uploaded."""
    url = server.add("t.png", image((400, 400), mode="RGBA"))
    prepared = await run(Link(url), KF2V, ctx, option="first_frame")
    assert prepared.notes == ("first_frame: flattened transparency onto white",)
    assert prepared.url == "oss://dashscope-instant/test/t.png" and prepared.oss
    sent = decoded(uploads[0].data)
    assert (sent.mode, sent.getpixel((0, 0))) == ("RGB", (255, 255, 255))
    assert prepared.info == ImageInfo("png", 400, 400, False, len(uploads[0].data))


async def test_too_large_is_scaled_down(server, ctx, uploads):
    """4000×3000 for a 2000 px model: scaled keeping the ratio, still a JPEG."""
    url = server.add("big.jpg", image((4000, 3000), "JPEG"))
    prepared = await run(Link(url), KF2V, ctx, option="first_frame")
    assert prepared.notes == ("first_frame: scaled 4000×3000 → 2000×1500",)
    assert decoded(uploads[0].data).size == (2000, 1500)
    assert (uploads[0].filename, uploads[0].content_type) == ("big.jpg", "image/jpeg")


async def test_gif_is_converted_to_png(server, ctx, uploads):
    """A GIF (first frame of two) becomes a PNG."""
    prepared = await run(Link(server.add("anim.gif", gif((400, 400)))), KF2V, ctx, option="f")
    assert prepared.notes == ("f: converted GIF (first frame) to PNG",)
    assert (prepared.info.format, uploads[0].filename) == ("png", "anim.png")
    assert decoded(uploads[0].data).format == "PNG"


async def test_tiff_is_converted_where_the_model_does_not_take_it(server, ctx):
    """kf2v does not list TIFF: converted to PNG."""
    prepared = await run(Link(server.add("p.tif", image((600, 600), "TIFF"))), KF2V, ctx)
    assert prepared.notes == ("input: converted TIFF to PNG",)


async def test_too_many_bytes_are_re_encoded_to_fit(server, ctx, uploads):
    """A 480 kB PNG for a 0.3 MB limit: re-encoded as JPEG at the first quality that fits."""
    field = small_field(MediaKind.IMAGE, int(0.3 * MiB))
    prepared = await run(Link(server.add("n.png", noise((400, 400)))), field, ctx)
    assert prepared.notes == ("input: re-encoded as JPEG (quality 90) to fit 0.3 MB",)
    assert prepared.info.format == "jpeg" and len(uploads[0].data) <= 0.3 * MiB


# --- audio ----------------------------------------------------------------------------------


async def test_wav_is_accepted(server, ctx):
    """A 5 s WAV: probed, unchanged, linked."""
    data = wav(5)
    prepared = await run(Link(server.add("a.wav", data)), I2V_AUDIO, ctx)
    assert prepared.info == AudioInfo("wav", 5.0, len(data))
    assert prepared.url.endswith("/files/a.wav")


@pytest.mark.skipif(not HAS_MP3, reason="this PyAV wheel has no MP3 encoder to make the file")
async def test_mp3_is_accepted(server, ctx):
    """A 5 s MP3."""
    prepared = await run(Link(server.add("a.mp3", mp3(5))), I2V_AUDIO, ctx)
    assert prepared.info.format == "mp3"
    assert prepared.info.duration_s == pytest.approx(5, abs=0.2)


@pytest.mark.parametrize(
    ("seconds", "shown"), [(2, "2.0"), (31, "31.0")], ids=["too-short", "too-long"]
)
async def test_audio_length_is_checked(server, ctx, seconds, shown):
    """3 to 30 s."""
    message = await refused(Link(server.add("a.wav", wav(seconds))), I2V_AUDIO, ctx)
    assert message == f"the audio is {shown} s long; this model needs between 3 and 30 s."


async def test_audio_in_another_format_is_refused(server, ctx):
    """AAC in MP4 is audio, but not a format the model takes; audio is never converted."""
    message = await refused(Link(server.add("a.m4a", audio_only_mp4(4))), I2V_AUDIO, ctx)
    assert message == "the file is MP4; this model takes WAV or MP3."


async def test_not_audio_is_refused(server, ctx):
    """An image given as audio."""
    message = await refused(Link(server.add("a.wav", image((50, 50)))), I2V_AUDIO, ctx)
    assert message == "this file is not audio Wan can read; use WAV or MP3."


async def test_audio_declared_too_big_is_refused_unfetched(server, ctx):
    """16 MB declared against 15 MB: not downloaded."""
    item = Attachment(server.add("a.wav", wav(5)), size=16 * MiB, filename="a.wav")
    assert await refused(item, I2V_AUDIO, ctx) == "the file is 16 MB, over the 15 MB limit."
    assert server.hits == []


# --- video ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mp4", "mov", "avi"])
async def test_videos_are_probed_and_told_apart(server, make_ctx, uploads, fmt):
    """mp4 and mov share a demuxer; the ftyp brand tells them apart. Uploaded from a temp file
    that is gone afterwards."""
    data = video(fmt, (320, 240), 3)
    prepared = await run(Link(server.add(f"v.{fmt}", data)), ANIMATE_VIDEO, make_ctx("oss"))
    assert prepared.info == VideoInfo(fmt, 3.0, 320, 240, len(data))
    (upload,) = uploads
    assert upload.data == data and upload.path is not None
    assert not upload.path.exists()
    assert prepared.oss


@pytest.mark.parametrize(
    ("size", "seconds", "expected"),
    [
        ((320, 240), 1, "the video is 1.0 s long; this model needs between 2 and 30 s."),
        ((320, 240), 31, "the video is 31.0 s long; this model needs between 2 and 30 s."),
        (
            (2100, 1000),
            2,
            "the video is 2100×1000 px; this model needs each side between 200 and 2048 px.",
        ),
        (
            (1000, 200),
            2,
            "the video is 1000×200 px (5:1); this model needs a width-to-height "
            "ratio between 1:3 and 3:1.",
        ),
    ],
    ids=["too-short", "too-long", "too-big", "too-wide"],
)
async def test_video_rules_are_checked(server, ctx, tmp_path, monkeypatch, size, seconds, expected):
    """Videos are never repaired: each broken rule is refused with the actual value, and the
    downloaded copy is removed."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    data = video("mp4", size, seconds, fps=1)
    assert await refused(Link(server.add("v.mp4", data)), ANIMATE_VIDEO, ctx) == expected
    assert list(tmp_path.iterdir()) == []


async def test_corrupt_video_is_refused(server, ctx):
    """The first kilobyte of an MP4 whose index is missing."""
    data = video("mp4", (320, 240), 3)[:1024]
    message = await refused(Link(server.add("v.mp4", data)), ANIMATE_VIDEO, ctx)
    assert message == "this file is not a video Wan can read; use MP4, MOV or AVI."


async def test_video_declared_too_big_costs_nothing(server, ctx):
    """201 MB declared against 200 MB: not downloaded."""
    item = Attachment(server.add("v.mp4", b"x"), size=201 * MiB, filename="v.mp4")
    assert await refused(item, ANIMATE_VIDEO, ctx) == "the file is 201 MB, over the 200 MB limit."
    assert server.hits == []


async def test_video_over_the_cap_leaves_no_temp_file(server, ctx, tmp_path, monkeypatch):
    """A streamed video over the cap is refused and its temporary file removed."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    server.add("v.mp4", video("mp4", (320, 240), 3))
    field = small_field(MediaKind.VIDEO, 2000, frozenset({"mp4"}))
    message = await refused(Link(server.url("/chunked/v.mp4")), field, ctx)
    assert message == "the file is over the 0.00191 MB limit."
    assert list(tmp_path.iterdir()) == []


# --- hand-over modes ------------------------------------------------------------------------


async def test_url_mode_links_untouched_and_uploads_repaired(server, make_ctx, uploads):
    """url: the user's link when unrepaired; a repaired image has no link of its own."""
    ctx = make_ctx("url")
    good = server.add("g.png", image((800, 600)))
    assert (await run(Link(good), KF2V, ctx)).url == good
    repaired = await run(Link(server.add("t.png", image((400, 400), mode="RGBA"))), KF2V, ctx)
    assert repaired.url.startswith("oss://") and len(uploads) == 1


async def test_data_mode_inlines_where_the_field_allows(server, make_ctx, uploads):
    """data: a data: URL of exactly the bytes, where the field accepts one."""
    data = image((800, 600))
    prepared = await run(Link(server.add("g.png", data)), KF2V, make_ctx("data"))
    assert prepared.url == "data:image/png;base64," + base64.b64encode(data).decode()
    assert not prepared.oss and uploads == []


async def test_data_mode_uploads_where_the_field_does_not_allow(server, make_ctx, uploads):
    """data, but kf2v-plus takes no data: URLs: uploaded."""
    prepared = await run(Link(server.add("g.png", image((800, 600)))), KF2V_PLUS, make_ctx("data"))
    assert prepared.oss and uploads[0].model == "wan-test"


async def test_oss_mode_always_uploads(server, make_ctx, uploads):
    """oss: even a perfect public link is uploaded, and the request needs the OSS header."""
    data = image((800, 600))
    prepared = await run(Link(server.add("g.png", data)), KF2V, make_ctx("oss"))
    assert prepared.url == "oss://dashscope-instant/test/g.png" and prepared.needs_oss
    assert (uploads[0].data, uploads[0].content_type) == (data, "image/png")


async def test_auto_mode_uploads_even_a_clean_link(server, make_ctx, uploads):
    """auto uploads the checked bytes: it works in every region and never expires early."""
    data = image((800, 600))
    url = server.add("clean.png", data)
    prepared = await run(MediaSource.link(url), KF2V, make_ctx("auto"))
    assert prepared.oss and prepared.url == "oss://dashscope-instant/test/clean.png"
    assert uploads[0].data == data


async def test_attachments_count_as_links(server, ctx, uploads):
    """A Discord attachment's CDN URL is public: url mode passes it on."""
    url = server.add("g.png", image((800, 600)))
    item = MediaSource.attachment(url, size=10_000, filename="g.png", content_type="image/png")
    assert (await run(item, KF2V, ctx)).url == url
    assert item.label == "g.png" and uploads == []


@pytest.mark.parametrize("mode", ["auto", "url", "oss"])
async def test_local_files_are_uploaded(ctx, make_ctx, uploads, tmp_path, mode):
    """A file on disk has no public link: uploaded under its own name."""
    path = tmp_path / "My Photo.png"
    path.write_bytes(image((800, 600)))
    prepared = await run(LocalFile(path), KF2V, make_ctx(mode))
    assert prepared.url == "oss://dashscope-instant/test/My_Photo.png"
    assert uploads[0].data == path.read_bytes()


async def test_local_files_are_inlined_in_data_mode(make_ctx, uploads, tmp_path):
    """data mode and a field that accepts it: no upload needed."""
    path = tmp_path / "a.png"
    path.write_bytes(image((800, 600)))
    prepared = await run(MediaSource.local(path), KF2V, make_ctx("data"))
    assert prepared.url.startswith("data:image/png;base64,") and uploads == []


async def test_local_video_is_uploaded_in_place(ctx, uploads, tmp_path):
    """A local video is probed and handed to the uploader as its own path, and kept."""
    path = tmp_path / "clip.mov"
    path.write_bytes(video("mov", (320, 240), 3))
    prepared = await run(LocalFile(path), ANIMATE_VIDEO, ctx)
    assert uploads[0].path == path and path.exists()
    assert (prepared.info.format, uploads[0].content_type) == ("mov", "video/quicktime")


async def test_local_files_get_the_same_checks(ctx, tmp_path):
    """Too many bytes on disk, or no file at all, are refused like a bad link."""
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (2 * 1000))
    field = small_field(MediaKind.AUDIO, 1000, frozenset({"wav"}))
    assert await refused(LocalFile(big), field, ctx) == (
        "the file is 0.00191 MB, over the 0.000954 MB limit."
    )
    missing = await refused(LocalFile(tmp_path / "nope.png"), KF2V, ctx)
    assert missing == "could not read nope.png: No such file or directory."


# --- errors from the network keep the option name -------------------------------------------


async def test_a_404_link_names_the_option(server, ctx):
    """The user sees which option's link failed."""
    assert await refused(Link(server.url("/status/404")), KF2V, ctx) == (
        "the link answered 404; check that it is public."
    )


async def test_a_stalled_download_times_out(server, make_ctx):
    """The fetch timeout from the settings applies."""
    message = await refused(Link(server.url("/stall")), KF2V, make_ctx(timeout_s=0.3))
    assert message == "could not download the file in 0.3 s."


async def test_metadata_address_is_refused(ctx):
    """The classic SSRF target."""
    message = await refused(Link("http://169.254.169.254/latest/meta-data/"), KF2V, ctx)
    assert message == PRIVATE_MESSAGE


async def test_a_plain_session_is_still_guarded(server, uploads):
    """Given an unguarded session, prepare opens a guarded one: trusted hosts work and
    localhost is still refused."""
    settings = Settings(dashscope_api_key="k", trusted_hosts=frozenset({"127.0.0.1"}),
                        media_handoff="url")
    async with aiohttp.ClientSession() as plain:
        ctx = MediaContext.from_settings(plain, settings, uploader=uploads)
        url = server.add("g.png", image((800, 600)))
        assert (await run(Link(url), KF2V, ctx)).url == url
        local = Link(f"http://localhost:{server.port}/files/g.png")
        assert await refused(local, KF2V, ctx) == PRIVATE_MESSAGE
    assert len(server.hits) == 1


# --- check() on its own ---------------------------------------------------------------------


def test_check_refuses_alpha_and_bytes():
    """The pure check names each broken rule."""
    limits = KF2V.limits
    with pytest.raises(InputError, match="has transparency"):
        check(ImageInfo("png", 800, 600, True, 1000), limits, option="x")
    with pytest.raises(InputError, match=r"the file is 11 MB; this model takes at most 10 MB\."):
        check(ImageInfo("png", 800, 600, False, 11 * MiB), limits, option="x")
    with pytest.raises(InputError, match="the file is GIF; this model takes JPEG, PNG, BMP or"):
        check(ImageInfo("gif", 800, 600, False, 1000), limits, option="x")


def test_values_just_past_a_limit_do_not_read_like_the_limit():
    """30.04 s is shown as 30.04 s, and 1000×3001 px as 1:3.001, not as the limit itself."""
    with pytest.raises(InputError, match=r"the audio is 30\.04 s long; this model needs between"):
        check(AudioInfo("wav", 30.04, 1000), I2V_AUDIO.limits, option="audio")
    limits = ANIMATE_IMAGE.limits
    with pytest.raises(InputError, match=r"\(1:3\.001\); this model needs a width-to-height"):
        check(ImageInfo("png", 1000, 3001, False, 1000), limits, option="image")


async def test_exif_rotation_is_kept_when_re_encoding(server, ctx, uploads):
    """Re-encoding drops EXIF, so a rotated photo is turned upright before it is scaled."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    url = server.add("phone.jpg", image((4000, 3000), "JPEG", exif=exif.tobytes()))
    prepared = await run(Link(url), KF2V, ctx)
    assert prepared.notes == ("input: scaled 3000×4000 → 1500×2000",)
    assert decoded(uploads[0].data).size == (1500, 2000)

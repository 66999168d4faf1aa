"""Decoding an image within a memory bound: once, and shrunk while decoding where possible.

Pillow holds most modes at 4 bytes a pixel, so an 8000×8000 RGB image is 256 MB decoded whole;
nothing here materialises more than DECODE_MAX_BYTES. JPEG decodes at 1/2, 1/4 or 1/8 scale
(`draft`; a progressive one still holds every coefficient, so it is budgeted); non-interlaced
PNG (what a decompression bomb is cheapest as) decodes a band of rows at a time, each band
reduced (`reduce`) as it comes; other formats decode whole only when they fit the budget, then
shrink band by band. Callers check the header's size first (`MAX_SIDE_PX`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from typing import IO

from PIL import Image, JpegImagePlugin

from bot.errors import InputError
from bot.provider.catalog import MODELS, MediaKind

MiB = 1024 * 1024
# The biggest image any model takes: bigger ones are refused by their header, never decoded.
MAX_SIDE_PX = max(
    field.limits.max_px
    for model in MODELS.values()
    for field in model.inputs
    if field.kind is MediaKind.IMAGE and field.limits.max_px is not None
)
DECODE_MAX_BYTES = 48 * MiB  # the most we hold decoded (~12.6 MP at 4 bytes a pixel)
# What decoding a whole image (formats without a partial decode) may cost. Pillow's WebP decoder
# costs 16 bytes a pixel (the frame, a copy, the image; measured), every other format its mode's.
WHOLE_DECODE_MAX_BYTES = 96 * MiB
DECODE_COST = {"WEBP": 4}  # times the mode's bytes a pixel
BAND_BYTES = 4 * MiB  # pixels decoded at a time when decoding in bands
PIXEL_BYTES = 4  # what Pillow spends on a pixel of most modes: the worst case plans with it
PNG_BITS = {  # PNG raw modes we decode in bands (their rows round-trip exactly), bits a pixel
    "1": 1, "L": 8, "LA": 16, "RGB": 24, "RGBA": 32, "P": 8, "P;1": 1, "P;2": 2, "P;4": 4,
}
WORKABLE = frozenset({"L", "LA", "RGB", "RGBA"})  # modes reduce() and our encoders take as is


def reduction(size: tuple[int, int], target: int) -> int:
    """The whole factor to shrink by while decoding: as much as `target` px on the longer side
    allows, and at least enough that the decoded pixels fit DECODE_MAX_BYTES."""
    width, height = size
    factor = max(1, max(size) // target)
    while math.ceil(width / factor) * math.ceil(height / factor) * PIXEL_BYTES > DECODE_MAX_BYTES:
        factor += 1
    return factor


def decode(
    image: Image.Image,
    target: int,
    *,
    option: str,
    flatten: bool = False,
    band_bytes: int = BAND_BYTES,
) -> Image.Image:
    """The first frame of a just-opened image, decoded once and shrunk by a whole factor toward
    `target` px on its longer side (further if memory demands); with `flatten`, transparency is
    composited onto white as it decodes. When there is nothing to do, `image` itself, loaded, in
    its own mode; else a new image in a WORKABLE mode with the ICC profile kept. Raises what
    Pillow raises for damaged files, and InputError when a format only decoded whole is over
    the budget."""
    factor = reduction(image.size, target)
    flatten = flatten and image.has_transparency_data
    if factor == 1 and not flatten:
        image.load()
        return image
    if isinstance(image, JpegImagePlugin.JpegImageFile):  # no alpha, so factor > 1 here
        if image.info.get("progressive"):
            _check_budget(image, option)
        image = _draft(image, factor)
        factor = max(1, max(image.size) // target)
        if factor == 1:
            return image
        bands = _crops(image, _rows(image, factor, band_bytes))
    elif _bandable(image):
        bands = _png_bands(image, _rows(image, factor, band_bytes))
    else:
        _check_budget(image, option)
        image.load()
        bands = _crops(image, _rows(image, factor, band_bytes))
    out = _assemble(image, bands, factor, flatten)
    if image.info.get("icc_profile"):
        out.info["icc_profile"] = image.info["icc_profile"]
    return out


def onto_white(image: Image.Image) -> Image.Image:
    """`image` composited onto white, as RGB: for models and formats that take no alpha."""
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    flat = Image.new("RGB", image.size, "white")
    flat.paste(rgba, mask=rgba)  # an RGBA mask pastes by its alpha: no copy of the channel
    if image.info.get("icc_profile"):
        flat.info["icc_profile"] = image.info["icc_profile"]
    return flat


def _draft(image: Image.Image, factor: int) -> Image.Image:
    """Load a JPEG at the largest scale (1/2, 1/4, 1/8) not under 1/factor that fits the budget."""
    scale = min(8, 1 << (factor.bit_length() - 1))
    width, height = image.size
    if scale < 8 and (width // scale) * (height // scale) * PIXEL_BYTES > DECODE_MAX_BYTES:
        scale *= 2
    image.draft(None, (width // scale, height // scale))
    image.load()
    return image


def _whole_cost(image: Image.Image) -> float:
    """Bytes a pixel costs when the whole image must be decoded (or, for a progressive JPEG,
    held as DCT coefficients: libjpeg keeps them all, 2 bytes each, per sampled component)."""
    if isinstance(image, JpegImagePlugin.JpegImageFile):
        layers = image.layer  # (component id, horizontal sampling, vertical sampling, table)
        most = max(h for _, h, _, _ in layers) * max(v for _, _, v, _ in layers)
        return 2 * sum(h * v for _, h, v, _ in layers) / most
    pixel = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    return pixel * DECODE_COST.get(image.format or "", 1)


def _check_budget(image: Image.Image, option: str) -> None:
    cost = _whole_cost(image)
    if image.width * image.height * cost <= WHOLE_DECODE_MAX_BYTES:
        return
    progressive = isinstance(image, JpegImagePlugin.JpegImageFile)
    kind = "progressive JPEG" if progressive else (image.format or "such").upper()
    instead = "a standard (baseline) JPEG" if progressive else "JPEG"
    raise InputError(
        option,
        f"the image is {image.width}×{image.height} px; the bot reads {kind} images up to "
        f"{WHOLE_DECODE_MAX_BYTES / cost / 1_000_000:.0f} megapixels. Save it as {instead} or "
        "PNG, or make it smaller.",
    )


def _rows(image: Image.Image, factor: int, band_bytes: int) -> int:
    """Rows per band: a multiple of `factor`, so bands shrink without seams."""
    return max(factor, band_bytes // (image.width * PIXEL_BYTES) // factor * factor)


def _assemble(
    source: Image.Image, bands: Iterator[Image.Image], factor: int, flatten: bool
) -> Image.Image:
    size = (math.ceil(source.width / factor), math.ceil(source.height / factor))
    out: Image.Image | None = None
    top = 0
    for band in bands:
        piece = _workable(source, band, flatten)
        if factor > 1:
            piece = piece.reduce(factor)
        if out is None:
            out = Image.new(piece.mode, size)
        out.paste(piece, (0, top))
        top += piece.height
    if out is None or top != size[1]:
        raise OSError("image file is truncated")
    return out


def _workable(source: Image.Image, band: Image.Image, flatten: bool) -> Image.Image:
    """`band` in a mode that shrinks well (palettes and transparent colours become RGB(A)),
    onto white if `flatten`."""
    if band.mode == "P" and source.palette is not None:
        band.palette = source.palette.copy()
    if source.info.get("transparency") is not None:
        band.info["transparency"] = source.info["transparency"]
    if band.mode.startswith("I;16"):  # 16-bit grey: keep the high byte, as Pillow shows it
        band = band.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    elif band.mode not in WORKABLE or "transparency" in band.info:
        band = band.convert("RGBA" if band.has_transparency_data else "RGB")
    return onto_white(band) if flatten and band.mode in ("LA", "RGBA") else band


def _crops(image: Image.Image, rows: int) -> Iterator[Image.Image]:
    for top in range(0, image.height, rows):
        yield image.crop((0, top, image.width, min(image.height, top + rows)))


# --- PNG in bands -----------------------------------------------------------------------------


def _bandable(image: Image.Image) -> bool:
    if image.format != "PNG" or image.info.get("interlace") or len(image.tile) != 1:
        return False
    tile = image.tile[0]
    return tile[0] == "zip" and tile[1] == (0, 0, *image.size) and tile[3] in PNG_BITS


def _png_bands(image: Image.Image, rows: int) -> Iterator[Image.Image]:
    """The image a band of `rows` rows at a time. Each band is its own little zlib stream that
    starts with the previous band's last row, unfiltered, so the PNG filters that refer to the
    row above still find it."""
    assert image.fp is not None
    _, _, offset, rawmode = image.tile[0]
    width = image.width
    stride = 1 + (width * PNG_BITS[rawmode] + 7) // 8  # a filter-type byte, then the row
    above = b""
    for filtered in _scanlines(_inflate(_idat(image.fp, offset), stride * rows), stride, rows,
                               image.height):
        payload = (b"\0" + above if above else b"") + filtered  # filter type 0: the row as is
        count = len(payload) // stride
        band = Image.frombytes(image.mode, (width, count), zlib.compress(payload, 0), "zip",
                               rawmode)
        yield band.crop((0, 1, width, count)) if above else band
        above = band.crop((0, count - 1, width, count)).tobytes("raw", rawmode)


def _idat(fp: IO[bytes], offset: int) -> Iterator[bytes]:
    """The compressed image data: consecutive IDAT chunks from the first one's data at `offset`."""
    fp.seek(offset - 8)
    while True:
        head = fp.read(8)
        if len(head) < 8 or head[4:] != b"IDAT":
            return
        length = int.from_bytes(head[:4], "big")
        data = fp.read(length)
        if len(data) < length:
            raise OSError("image file is truncated")
        yield data
        fp.seek(4, 1)  # the chunk's CRC


def _inflate(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Decompressed pieces of at most `limit` bytes each, however much the input expands."""
    inflater = zlib.decompressobj()
    try:
        for chunk in chunks:
            while chunk:
                yield inflater.decompress(chunk, limit)
                chunk = inflater.unconsumed_tail
        while not inflater.eof and (piece := inflater.decompress(b"", limit)):
            yield piece  # what zlib still held when the input ran out
    except zlib.error as exc:
        raise OSError(f"broken PNG data: {exc}") from None


def _scanlines(pieces: Iterator[bytes], stride: int, rows: int, height: int) -> Iterator[bytes]:
    """Filtered rows, `rows` at a time, until the image's `height` is reached."""
    pending = bytearray()
    left = height
    for piece in pieces:
        pending += piece
        while left and len(pending) >= stride * min(rows, left):
            take = stride * min(rows, left)
            yield bytes(pending[:take])
            del pending[:take]
            left -= take // stride
        if not left:
            return
    raise OSError("image file is truncated")

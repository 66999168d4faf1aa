"""Media made on the spot for tests and benches; big images without ever holding their pixels."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator

import av

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

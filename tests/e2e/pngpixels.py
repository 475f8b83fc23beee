"""Just enough of a PNG decoder for screenshot checks: 8-bit RGB or RGBA, not interlaced
(what headless Chromium writes), every row unfiltered."""

from __future__ import annotations

import struct
import zlib
from typing import Tuple

#: Channels per pixel of the PNG colour types read here.
CHANNELS = {2: 3, 6: 4}


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(kind: int, row: bytearray, prior: bytes, bpp: int) -> None:
    if kind == 1:
        for i in range(bpp, len(row)):
            row[i] = (row[i] + row[i - bpp]) & 0xFF
    elif kind == 2:
        row[:] = bytes((x + y) & 0xFF for x, y in zip(row, prior))
    elif kind == 3:
        for i in range(len(row)):
            left = row[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + ((left + prior[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(len(row)):
            left = row[i - bpp] if i >= bpp else 0
            up_left = prior[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + _paeth(left, prior[i], up_left)) & 0xFF
    elif kind != 0:
        raise ValueError(f"unknown PNG filter {kind}")


def image_data(data: bytes) -> Tuple[int, int, int, bytes]:
    """(width, height, colour type, the decompressed image data: filtered rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height, _, colour = struct.unpack(">IIBB", data[16:26])
    idat = b""
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        if data[offset + 4 : offset + 8] == b"IDAT":
            idat += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return width, height, colour, zlib.decompress(idat)


def decode(data: bytes) -> Tuple[int, int, int, bytes]:
    """(width, height, channels, pixels row after row)."""
    depth, interlace = data[24], data[28]
    width, height, colour, raw = image_data(data)
    assert depth == 8 and colour in CHANNELS and not interlace, (depth, colour, interlace)
    bpp = CHANNELS[colour]
    stride = width * bpp
    prior = bytes(stride)
    out = bytearray()
    for y in range(height):
        start = y * (stride + 1)
        row = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], row, prior, bpp)
        out += row
        prior = bytes(row)
    return width, height, bpp, bytes(out)


def count_colour(pixels: bytes, channels: int, colour: str) -> int:
    """Pixels of exactly this ``#rrggbb`` colour (opaque)."""
    rgb = bytes.fromhex(colour.lstrip("#"))
    pattern = rgb + (b"\xff" if channels == 4 else b"")
    count, start = 0, 0
    while True:
        found = pixels.find(pattern, start)
        if found < 0:
            return count
        if found % channels == 0:
            count += 1
            start = found + channels
        else:
            start = found + 1

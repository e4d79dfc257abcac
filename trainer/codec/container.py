"""The `.pxl` container: a checked header, then the range coder's payload.

Layout (little-endian; spec also in docs/FORMAT.md):

    offset  size  field
    0       4     magic b"PXLM"
    4       1     format version (1, 2; 3 for a fallback payload)
    5       16    bundle id (first 16 bytes of the bundle's sha256 id)
    21      1+n   numeric mode, length-prefixed ASCII (how probabilities were computed, e.g. "fp32-cpu-ftz-l16")
    .       1+n   image mode, length-prefixed ASCII ("L", "LA", "RGB", "RGBA")
    .       4     width           4  height          1  channels
    .       2     patch height    2  patch width     1  probability precision (bits)
    .       4     CRC32 of the raw pixels (H x W x C bytes, row-major)
    .       8     payload length in bytes
    .       4     CRC32 of the payload
    .       4     CRC32 of every header byte before this field
    .       ...   payload (32-bit words of the range coder; lossless WebP or JPEG-XL where the
                  numeric mode is "webp-lossless" or "jpegxl-lossless", trainer.codec.fallback)

Parsing checks magic, version, header CRC, field ranges, mode/channels agreement, payload length
and payload CRC before any model runs; the pixel CRC is checked after decoding.
"""

import math
import struct
import zlib
from dataclasses import dataclass

from trainer.codec import fallback
from trainer.tokenize.pixels import CHANNELS
from trainer.errors import PixlmError

MAGIC = b"PXLM"
VERSION = 2  # 2: context streams may name an adapting numeric mode (layout unchanged from 1)
FALLBACK_VERSION = 3  # 3: the payload is the fallback codec's (same layout): older readers refuse it
READABLE = (1, 2, 3)
ALL_VERSIONS = (*READABLE, 4, 5, 6)  # with the envelope's (trainer.codec.envelope): what a refusal names
MAX_SUBPIXELS = 1 << 32  # a bound checked before anything is allocated (4 GiB of pixels)
MAX_SIDE = 1 << 20
_FIXED = struct.Struct("<IIBHHBIQI")  # width, height, channels, patch h, patch w, precision, pixel crc, payload len, payload crc


class FormatError(PixlmError):
    """A file that is not a valid pixlm stream (truncated, corrupted or foreign)."""


@dataclass(frozen=True)
class Header:
    bundle_id: bytes  # 16 bytes
    numeric_mode: str
    mode: str
    width: int
    height: int
    channels: int
    patch_height: int
    patch_width: int
    precision: int
    pixel_crc: int


def _short_text(value: str) -> bytes:
    data = value.encode("ascii")
    if len(data) > 255:
        raise ValueError(f"header text too long: {value!r}")
    return bytes([len(data)]) + data


def pack(header: Header, payload: bytes) -> bytes:
    version = FALLBACK_VERSION if header.numeric_mode in fallback.MODES else VERSION
    body = (MAGIC + bytes([version]) + header.bundle_id + _short_text(header.numeric_mode) + _short_text(header.mode)
            + _FIXED.pack(header.width, header.height, header.channels, header.patch_height, header.patch_width,
                          header.precision, header.pixel_crc, len(payload), zlib.crc32(payload)))
    return body + struct.pack("<I", zlib.crc32(body)) + payload


def unpack(data: bytes) -> tuple[Header, bytes]:
    """Header and payload of a stream; FormatError with a one-line reason otherwise."""
    if len(data) == 0:
        raise FormatError("empty file")
    if not data.startswith(MAGIC[:min(len(data), 4)]):
        raise FormatError("not a pixlm file (bad magic)")
    if len(data) < 21:
        raise FormatError("truncated header")
    if data[4] not in READABLE:
        raise FormatError(f"format version {data[4]} is not supported (this pixlm reads versions "
                          f"{', '.join(map(str, ALL_VERSIONS))}; a newer pixlm decodes it)")
    pos = 21
    try:
        texts = []
        for _ in range(2):
            n = data[pos]
            if len(data) < pos + 1 + n:
                raise IndexError
            texts.append(data[pos + 1:pos + 1 + n].decode("ascii"))
            pos += 1 + n
        fields = _FIXED.unpack_from(data, pos)
        pos += _FIXED.size
        (stored_crc,) = struct.unpack_from("<I", data, pos)
    except (IndexError, struct.error):
        raise FormatError("truncated header") from None
    except UnicodeDecodeError:
        raise FormatError("corrupted header") from None
    if zlib.crc32(data[:pos]) != stored_crc:
        raise FormatError("corrupted header (CRC mismatch)")
    width, height, channels, ph, pw, precision, pixel_crc, payload_len, payload_crc = fields
    header = Header(data[5:21], texts[0], texts[1], width, height, channels, ph, pw, precision, pixel_crc)
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and 0 < ph and 0 < pw and 8 <= precision <= 24
            and CHANNELS.get(header.mode) == channels
            and (data[4] == FALLBACK_VERSION) == (header.numeric_mode in fallback.MODES)
            and (data[4] != FALLBACK_VERSION or max(width, height) <= fallback.MAX_SIDE)):
        raise FormatError("invalid header fields")
    # Every coded symbol costs at least -log2(1 - 255 / 2**precision) bits (each of the 256 values keeps a
    # frequency >= 1), so the payload bounds how many subpixels a stream can hold: a header claiming
    # more is refused before any image buffer is allocated.
    subpixels = width * height * channels
    min_bits = -math.log2(1 - 255 / (1 << precision))
    if subpixels > MAX_SUBPIXELS or (data[4] != FALLBACK_VERSION and subpixels * min_bits > 8 * payload_len + 64):
        raise FormatError(f"invalid header fields ({width}x{height}x{channels} cannot be held in {payload_len} payload bytes)")
    payload = data[pos + 4:]
    if len(payload) < payload_len:
        raise FormatError(f"truncated payload ({len(payload)} of {payload_len} bytes)")
    if len(payload) > payload_len:
        raise FormatError(f"{len(payload) - payload_len} unexpected bytes after the payload")
    if zlib.crc32(payload) != payload_crc:
        raise FormatError("corrupted payload (CRC mismatch)")
    return header, payload

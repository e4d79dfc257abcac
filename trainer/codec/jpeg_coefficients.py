"""pixlm's own JPEG coder (coder 2 of trainer.codec.jpeg): a baseline JPEG as its headers and
trailer (zlib, with libjpeg's tables as the dictionary) and its quantized DCT coefficients (the
engine's context-mixing model, trainer.engine.jpeg_model), restored byte for byte by
trainer.codec.jpeg_scan.

The part: `PJ` and a format byte (1), the sizes of the head, the trailer and their zlib stream
(three uint32, little-endian), that zlib stream, then the coded coefficients.
"""

import struct
import zlib

import numpy as np

from trainer.codec import jpeg_scan

MAGIC = b"PJ\x01"
_SIZES = struct.Struct("<III")


class DamagedPart(ValueError):
    """The part does not decode into a JPEG."""


def _model_layout(scan: jpeg_scan.Scan):
    """(offsets, rows, columns, sampling, total) of the scan's coefficients as the model takes them."""
    offsets, rows, cols, total = jpeg_scan.geometry(scan)
    return offsets, rows, cols, np.array(scan.sampling, dtype=np.int64), total


def _zlib(dictionary: bytes):
    return zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)


def compress(data: bytes) -> bytes:
    """The part of a JPEG file; jpeg_scan.Unsupported for a kind this coder does not take."""
    from trainer.codec.jpeg import header_dictionary
    from trainer.engine import jpeg_model

    scan = jpeg_scan.split(data)
    offsets, rows, cols, sampling, _ = _model_layout(scan)
    payload, _ = jpeg_model.encode(scan.values, offsets, rows, cols, sampling, scan.quant)
    z = _zlib(header_dictionary())
    headers = z.compress(scan.head + scan.tail) + z.flush()
    return MAGIC + _SIZES.pack(len(scan.head), len(scan.tail), len(headers)) + headers + payload


def decompress(part: bytes, size: int) -> bytes:
    """The JPEG file of a part (`size`: the file's size, from the stream); DamagedPart (one line)
    where it does not decode."""
    from trainer.codec.jpeg import header_dictionary
    from trainer.engine import jpeg_model

    if part[:3] != MAGIC or len(part) < 3 + _SIZES.size:
        raise DamagedPart("not a pixlm JPEG part")
    head_size, tail_size, zsize = _SIZES.unpack_from(part, 3)
    start = 3 + _SIZES.size
    try:
        z = zlib.decompressobj(15, header_dictionary())
        headers = z.decompress(part[start:start + zsize], head_size + tail_size + 1)
    except zlib.error as err:
        raise DamagedPart(f"its headers do not decompress ({err})") from None
    if len(headers) != head_size + tail_size:
        raise DamagedPart("its headers are not the size it says")
    try:
        scan = jpeg_scan.layout(headers[:head_size], headers[head_size:])
    except jpeg_scan.Unsupported as err:
        raise DamagedPart(f"its JPEG header is not one it can hold ({err})") from None
    offsets, rows, cols, sampling, total = _model_layout(scan)
    if total // 64 > 4 * size:  # Huffman codes a block in 2 bits at least (DC, EOB): nothing to allocate for a lie
        raise DamagedPart("its header declares more blocks than a file of its size holds")
    jpeg_model.decode(part[start + zsize:], scan.values, offsets, rows, cols, sampling, scan.quant)
    if not jpeg_scan.in_range(scan.values):
        raise DamagedPart("a coefficient out of range")
    return jpeg_scan.join(scan)

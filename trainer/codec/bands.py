"""Large pictures coded in bands of rows (format version 6): memory bounded by a few bands,
whatever the image's size.

A picture of more than BAND_PIXELS pixels is cut into bands of whole rows, each coded by the
codec as a picture of its own: an ordinary stream (version 2/3 for 8-bit samples, 4 otherwise),
so every model, fallback and check applies to a band unchanged. The bands are the parts of an
envelope (trainer.codec.envelope, representation `bands`) that holds the picture's format and
metadata and the CRC32 of all its samples. Bands are read, coded and written in order, `threads`
at a time (each codes its own stripes; the engine's state starts afresh in every band, as in
every stripe); the decoder writes each band's rows out as it comes.
"""

import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from trainer.codec import envelope
from trainer.cpu import release_memory
from trainer.images import png
from trainer.images.bands import Source
from trainer.images.picture import Picture, sample_bytes

BAND_PIXELS = 1 << 21  # pixels a band holds at most (when the picture has 255 bands or fewer)
MAX_BANDS = 255  # the envelope's part count is one byte
COLOUR_TYPES = {"L": 0, "RGB": 2, "P": 3, "LA": 4, "RGBA": 6}


def banded(width: int, height: int) -> bool:
    return width * height > BAND_PIXELS


def band_rows(width: int, height: int) -> int:
    """Rows of every band but the last: about BAND_PIXELS pixels each, at most MAX_BANDS bands."""
    count = min(MAX_BANDS, -(-width * height // BAND_PIXELS))
    return -(-height // count)


def _ordered(jobs, work, threads: int):
    """work(job) of every job, in order, at most `threads` at once (memory: a band's models each)."""
    threads = max(1, threads)
    with ThreadPoolExecutor(threads) as pool:
        pending = []
        for job in jobs:
            if len(pending) == threads:
                yield pending.pop(0).result()
                release_memory()
            pending.append(pool.submit(work, job))
        for future in pending:
            yield future.result()


def encode(codec, source: Source, f, threads: int) -> tuple[int, float | None]:
    """Write the bands stream of `source` to the file object `f` (seekable); (its length in
    bytes, the ideal code length in bits of the model's parts, or None where a band had none)."""
    head, width, height = source.head, source.width, source.height
    rows = band_rows(width, height)
    spans = [(y, min(height, y + rows)) for y in range(0, height, rows)]
    crc = 0

    def bands():  # read in order on this thread (the reader is not shared), CRC of all samples as they come
        nonlocal crc
        for y0, y1 in spans:
            samples = np.ascontiguousarray(source.read(y1 - y0))
            crc = zlib.crc32(sample_bytes(samples), crc)
            yield samples

    start = f.tell()
    layout = envelope.Envelope(codec.short_id, envelope.BANDS, 0, width, height, source.channels, head.depth, 0,
                               head.entries(), [])
    f.write(envelope.pack_head(layout, [(0, 0)] * len(spans)))  # its length only: filled in below
    sizes, ideal = [], 0.0
    for data, bits in _ordered(bands(), lambda samples: _band_stream(codec, samples, head), threads):
        f.write(data)
        sizes.append((len(data), zlib.crc32(data)))
        ideal = None if ideal is None or bits is None else ideal + bits
    end = f.tell()
    f.seek(start)
    f.write(envelope.pack_head(replace(layout, sample_crc=crc), sizes))
    f.seek(end)
    return end - start, ideal


def _band_stream(codec, samples: np.ndarray, head: Picture) -> tuple[bytes, float | None]:
    """(stream, ideal bits of its model part or None) of one band: a picture of its own."""
    if head.depth == 8 and head.layout != "P":
        data, ideal, _, _ = codec._stream(samples)
        return data, ideal
    height, width = samples.shape[:2]
    ihdr = png.Ihdr(width, height, head.depth, COLOUR_TYPES[head.layout], 0)
    data, ideal, _ = codec._envelope(Picture(samples, head.depth, head.layout, "png",
                                             [(b"IHDR", ihdr.pack()), (png.IDAT, b"")]))
    return data, ideal


def decode(codec, f, write, threads: int) -> envelope.Envelope:
    """Decode the bands stream in the file object `f`, giving each band's rows to `write` in order;
    the envelope (without parts). Raises CodecError/FormatError (one line) on any damage, after
    which what was written must be discarded (the sample CRC is checked last)."""
    from trainer.codec.stream import CodecError

    head, sizes = envelope.read_head(f)
    if head.representation != envelope.BANDS:
        raise CodecError("not a stream of bands")
    dtype = np.uint16 if head.depth > 8 else np.uint8
    parts = (envelope.read_part(f, index, *size) for index, size in enumerate(sizes))
    crc, rows = 0, 0
    for samples in _ordered(parts, lambda part: codec.decode_picture(part).samples, threads):
        if samples.shape[1:] != (head.width, head.channels) or samples.dtype != dtype or rows + len(samples) > head.height:
            raise CodecError(f"damaged payload: a band of {samples.dtype} {samples.shape} in a "
                             f"{head.width}x{head.height}x{head.channels} picture")
        crc = zlib.crc32(sample_bytes(samples), crc)
        rows += len(samples)
        write(samples)
    if f.read(1):
        raise CodecError("damaged payload: unexpected bytes after the last band")
    if rows != head.height or crc != head.sample_crc:
        raise CodecError("damaged payload: the decoded samples fail the CRC check; the output was not written")
    return head

"""Pictures read and written a band of rows at a time, so that coding a large image keeps memory
bounded: PNG (not interlaced) and binary PGM/PPM straight from the file; other files (TIFF,
interlaced PNG, what Pillow reads) are decoded whole, within the pixel limit, then handed out
in bands. Written back the same way: PNG and PNM by rows, other formats whole."""

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from trainer.images import limit, png, pnm
from trainer.images.files import written_whole
from trainer.images.picture import ImageModeError, Picture, picture_bytes, picture_of_bytes

HEAD = 1 << 12  # bytes of a file read to learn its format and declared size


@dataclass
class Source:
    """A picture's rows, read on demand: `read(n)` gives the next n rows (n, W, C) in order."""
    head: Picture  # the file's format and metadata; its samples hold no rows: (0, W, C)
    height: int
    read: Callable[[int], np.ndarray]

    @property
    def width(self) -> int:
        return self.head.width

    @property
    def channels(self) -> int:
        return self.head.channels


def no_rows(picture: Picture) -> Picture:
    """The picture's format and metadata with none of its rows."""
    return Picture(picture.samples[:0], picture.depth, picture.layout, picture.format, picture.chunks,
                   picture.record, picture.notes)


def whole(picture: Picture) -> Source:
    """The bands of a picture already in memory."""
    position = [0]

    def read(rows: int) -> np.ndarray:
        start, position[0] = position[0], position[0] + rows
        return picture.samples[start:start + rows]

    return Source(no_rows(picture), picture.height, read)


@contextmanager
def open_source(path: Path, max_pixels: int | None = limit.MAX_PIXELS):
    """The Source of an image file, its declared size checked against `max_pixels` first."""
    name = str(path)
    with open(path, "rb") as f:
        first = f.read(HEAD)
        limit.check(limit.declared_size(first), name, max_pixels)
        f.seek(0)
        try:
            if first.startswith(png.SIGNATURE) and first[28:29] == b"\x00":  # IHDR's interlace byte: none
                yield _png_source(f)
            elif first[:2] in (b"P5", b"P6"):
                yield _pnm_source(f, first)
            else:
                yield whole(picture_of_bytes(f.read(), name, max_pixels))
        except (png.PngError, pnm.PnmError) as err:
            raise ImageModeError(f"{name}: {err}") from None


def _png_source(f) -> Source:
    from trainer.images.png_rows import RowReader

    chunks = png.file_chunks(f)  # every chunk checked (the image data's CRCs too) before a row is read
    ihdr = png.Ihdr.parse(chunks[0][1])
    palette = [body for kind, body in chunks if kind == b"PLTE"]
    if ihdr.colour_type == 3 and not palette:
        raise png.PngError("palette image without a PLTE chunk")
    f.seek(0)
    reader = RowReader(f, ihdr, len(palette[0]) // 3 if palette else 256)
    dtype = np.uint16 if ihdr.depth == 16 else np.uint8
    head = Picture(np.zeros((0, ihdr.width, ihdr.channels), dtype), ihdr.depth, ihdr.layout, "png", chunks)
    return Source(head, ihdr.height, reader.read)


def _pnm_source(f, first: bytes) -> Source:
    magic, width, height, maxval, offset = pnm.read_header(first)
    channels, size = (1 if magic == b"P5" else 3), (2 if maxval > 255 else 1)
    f.seek(offset)
    head = Picture(np.zeros((0, width, channels), np.uint16 if size == 2 else np.uint8), maxval.bit_length(),
                   "L" if channels == 1 else "RGB", "pnm", [], {"maxval": maxval})
    return Source(head, height, lambda rows: pnm.samples_of(f.read(rows * width * channels * size), rows, width,
                                                             magic, maxval))


@contextmanager
def open_writer(path: Path, head: Picture, height: int):
    """A function that writes the next band of rows of the picture `head` describes into `path`:
    PNG (not interlaced) and PNM by rows, other formats gathered and written whole at the end.
    Written whole or not at all: a temporary name beside `path`, renamed once complete."""
    with written_whole(path) as temporary, open(temporary, "wb") as f:
        if head.format == "png" and not head.ihdr.interlace:
            from trainer.images.png_rows import RowWriter

            writer = RowWriter(f, png.Ihdr(head.width, height, head.depth, head.ihdr.colour_type, 0), head.chunks)
            yield writer.write
            writer.close()
        elif head.format == "pnm":
            f.write(pnm.header(head.width, height, head.channels, head.record["maxval"]))
            yield lambda samples: f.write(pnm.body(samples, head.record["maxval"]))
        else:
            bands = []
            yield bands.append
            f.write(picture_bytes(Picture(np.concatenate(bands), head.depth, head.layout, head.format,
                                          head.chunks, head.record)))

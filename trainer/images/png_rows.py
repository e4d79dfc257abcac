"""PNG read and written a band of rows at a time (files that are not interlaced): memory bounded
by the band, whatever the image's size. Image data is inflated only as far as the rows asked for
(so a deflate bomb inflates a band, not the image), unfiltered by a compiled loop, and written back
filtered row by row into one deflate stream."""

import zlib

import numba
import numpy as np

from trainer.images import png


@numba.njit(cache=True, nogil=True)
def _unfilter(data, above, bpp, out):
    """Scanlines `data` ((n, 1 + stride): filter type, then bytes) unfiltered into `out` (n, stride),
    `above` the scanline before them; the index of a row whose filter type is unknown, else -1."""
    rows, stride = out.shape
    for r in range(rows):
        kind = data[r, 0]
        if kind > 4:
            return r
        for i in range(stride):
            up = np.int32(above[i]) if r == 0 else np.int32(out[r - 1, i])
            left = np.int32(out[r, i - bpp]) if i >= bpp else 0
            corner = 0
            if i >= bpp:
                corner = np.int32(above[i - bpp]) if r == 0 else np.int32(out[r - 1, i - bpp])
            if kind == 0:
                guess = 0
            elif kind == 1:
                guess = left
            elif kind == 2:
                guess = up
            elif kind == 3:
                guess = (left + up) >> 1
            else:  # Paeth
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                guess = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
            out[r, i] = (np.int32(data[r, i + 1]) + guess) & 0xFF
    return -1


def _samples(lines: np.ndarray, ihdr: png.Ihdr) -> np.ndarray:
    """(n, W, C) samples of unfiltered scanlines: the inverse of png._rows."""
    rows, width, channels = lines.shape[0], ihdr.width, ihdr.channels
    if ihdr.depth == 16:
        return lines.view(">u2").reshape(rows, width, channels).astype(np.uint16)
    if ihdr.depth == 8:
        return lines.reshape(rows, width, channels)
    bits = np.unpackbits(lines, axis=1)[:, :width * ihdr.depth].reshape(rows, width, ihdr.depth)
    weights = (1 << np.arange(ihdr.depth - 1, -1, -1)).astype(np.uint8)
    return (bits * weights).sum(axis=2, dtype=np.uint8).reshape(rows, width, 1)


class RowReader:
    """The samples of a non-interlaced PNG file object, `read(n)` rows at a time, in order."""

    def __init__(self, f, ihdr: png.Ihdr, palette_size: int = 256):
        if ihdr.interlace:
            raise ValueError("an interlaced PNG is not read by rows")
        self.ihdr, self.palette_size = ihdr, palette_size
        self.stride = (ihdr.width * ihdr.channels * ihdr.depth + 7) // 8
        self.bpp = max(1, ihdr.channels * ihdr.depth // 8)
        self.above = np.zeros(self.stride, dtype=np.uint8)
        self.pieces = (piece for kind, piece in png.walk(f) if kind == png.IDAT)
        self.inflate, self.pending = zlib.decompressobj(), bytearray()

    def _inflated(self, size: int) -> bytes:
        while len(self.pending) < size:
            if self.inflate.unconsumed_tail:
                source = self.inflate.unconsumed_tail
            elif self.inflate.eof or (source := next(self.pieces, None)) is None:
                raise png.PngError("image data ends before the last row")
            try:
                self.pending += self.inflate.decompress(source, size - len(self.pending))
            except zlib.error as err:
                raise png.PngError(f"image data does not decode ({err})") from None
        out = bytes(self.pending[:size])
        del self.pending[:size]
        return out

    def read(self, rows: int) -> np.ndarray:
        data = np.frombuffer(self._inflated(rows * (self.stride + 1)), dtype=np.uint8).reshape(rows, self.stride + 1)
        lines = np.empty((rows, self.stride), dtype=np.uint8)
        bad = _unfilter(data, self.above, self.bpp, lines)
        if bad >= 0:
            raise png.PngError(f"image data does not decode (unknown filter type {data[bad, 0]})")
        self.above = lines[-1].copy()
        samples = _samples(lines, self.ihdr)
        if self.ihdr.colour_type == 3 and samples.max(initial=0) >= self.palette_size:
            raise png.PngError(f"palette index {samples.max()} beyond the {self.palette_size}-colour PLTE")
        return samples


class RowWriter:
    """A PNG written to a file object a band of rows at a time: `write(samples)` in order, `close()`;
    the same IHDR and every other chunk of `chunks` (read_chunks' list) in its place."""

    FLUSH = 1 << 20  # bytes of deflate output per IDAT chunk

    def __init__(self, f, ihdr: png.Ihdr, chunks: list[tuple[bytes, bytes]]):
        if ihdr.interlace:
            raise ValueError("an interlaced PNG is not written by rows")
        marker = [kind for kind, _ in chunks].index(png.IDAT)
        self.f, self.ihdr, self.after = f, ihdr, chunks[marker + 1:]
        f.write(png.SIGNATURE)
        for kind, body in chunks[:marker]:
            f.write(png._chunk(kind, ihdr.pack() if kind == b"IHDR" else body))
        self.bpp = max(1, ihdr.channels * ihdr.depth // 8)
        self.above, self.deflate, self.out = None, zlib.compressobj(9), bytearray()

    def write(self, samples: np.ndarray) -> None:
        lines = png._rows(samples, self.ihdr.depth)
        self.out += self.deflate.compress(png._filtered(lines, self.bpp, self.above))
        self.above = lines[-1].copy()
        if len(self.out) >= self.FLUSH:
            self.f.write(png._chunk(png.IDAT, bytes(self.out)))
            self.out = bytearray()

    def close(self) -> None:
        self.out += self.deflate.flush()
        self.f.write(png._chunk(png.IDAT, bytes(self.out)))
        for kind, body in self.after:
            self.f.write(png._chunk(kind, body))
        self.f.write(png._chunk(b"IEND", b""))

"""PNG at full fidelity: the chunk list read and checked, samples at their true depth, and a writer
that puts the same IHDR (depth, colour type, interlace) and every other chunk back byte for byte.

Pixels are decoded by libraries, never by Pillow's reduced view: 16-bit files by libpng
(imagecodecs), 1..8-bit files by Pillow (its modes 1, L, LA, RGB, RGBA, P hold 8-bit samples
exactly; 2- and 4-bit gray come back scaled by 85 and 17, which divides back exactly). The chunk
walk (lengths, CRCs, order) is ours: it is what keeps metadata, palette and transparency.
"""

import io
import os
import struct
import zlib
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from trainer.errors import PixlmError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# colour type -> (layout, channels); 3 is palette: one channel of indices
COLOUR_TYPES = {0: ("L", 1), 2: ("RGB", 3), 3: ("P", 1), 4: ("LA", 2), 6: ("RGBA", 4)}
DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))  # x0, y0, dx, dy
IDAT = b"IDAT"  # in a chunk list: where the image data goes (its bytes are not kept)
# Ancillary chunks that are not metadata: `--strip` keeps them (transparency changes what the pixels show)
PIXEL_MEANING = {b"tRNS"}


class PngError(PixlmError):
    """A PNG that cannot be read at full fidelity (corrupt, animated, or with unknown critical chunks)."""


@dataclass(frozen=True)
class Ihdr:
    width: int
    height: int
    depth: int
    colour_type: int
    interlace: int

    @classmethod
    def parse(cls, data: bytes) -> "Ihdr":
        if len(data) != 13:
            raise PngError("IHDR is not 13 bytes")
        width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data)
        if (colour not in DEPTHS or depth not in DEPTHS[colour] or compression or filtering or interlace > 1
                or not (0 < width < 2 ** 31 and 0 < height < 2 ** 31)):
            raise PngError(f"invalid IHDR (depth {depth}, colour type {colour}, interlace {interlace})")
        return cls(width, height, depth, colour, interlace)

    def pack(self) -> bytes:
        return struct.pack(">IIBBBBB", self.width, self.height, self.depth, self.colour_type, 0, 0, self.interlace)

    @property
    def layout(self) -> str:
        return COLOUR_TYPES[self.colour_type][0]

    @property
    def channels(self) -> int:
        return COLOUR_TYPES[self.colour_type][1]


PIECE = 1 << 20  # image data is read in pieces of at most this many bytes (memory: bounded by it)


def read_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk up to IEND, CRCs and order checked. IDAT chunks collapse into one
    marker entry (type IDAT, empty data): where the image data stood among the others."""
    return file_chunks(io.BytesIO(data))


def file_chunks(f) -> list[tuple[bytes, bytes]]:
    """read_chunks of a file object, the image data read in pieces and checked, never held."""
    chunks = []
    for kind, body in walk(f):
        if kind != IDAT:
            chunks.append((kind, body))
        elif chunks[-1][0] != IDAT:
            chunks.append((IDAT, b""))
    return chunks


def walk(f):
    """Every chunk of the PNG file object `f` up to IEND, checked (signature, CRCs, order): (type,
    data) for each chunk but IDAT, (IDAT, piece) for each piece of image data in order."""
    if f.read(len(SIGNATURE)) != SIGNATURE:
        raise PngError("not a PNG file (bad signature)")
    seen, last = set(), None
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise PngError("truncated file (no IEND chunk)")
        length, kind = struct.unpack(">I4s", head)
        name = kind.decode("latin-1")
        if length >= 2 ** 31:
            raise PngError(f"truncated file ({name!r} chunk cut short)")
        if kind == IDAT:
            if last is None:
                raise PngError("the first chunk is not IHDR")
            if IDAT in seen and last != IDAT:
                raise PngError("IDAT chunks are not consecutive")
            crc = zlib.crc32(kind)
            for offset in range(0, max(length, 1), PIECE):  # an empty IDAT is still where the data stands
                piece = f.read(min(PIECE, length - offset))
                if len(piece) < min(PIECE, length - offset):
                    raise PngError(f"truncated file ({name!r} chunk cut short)")
                crc = zlib.crc32(piece, crc)
                yield IDAT, piece
            body = b""
        else:
            body = f.read(length)
            if len(body) < length:
                raise PngError(f"truncated file ({name!r} chunk cut short)")
            crc = zlib.crc32(kind + body)
        stored = f.read(4)
        if len(stored) < 4:
            raise PngError(f"truncated file ({name!r} chunk cut short)")
        if crc != struct.unpack(">I", stored)[0]:
            raise PngError(f"corrupted {name} chunk (CRC mismatch)")
        if last is None and kind != b"IHDR":
            raise PngError("the first chunk is not IHDR")
        if kind == b"IEND":
            break
        if kind in (b"acTL", b"fcTL", b"fdAT"):
            raise PngError("animated PNG (APNG): pixlm codes still images only")
        if kind != IDAT:
            if kind[0] & 0x20 == 0 and kind not in (b"IHDR", b"PLTE"):
                raise PngError(f"unknown critical chunk {name!r}")
            if kind in (b"IHDR", b"PLTE") and kind in seen:
                raise PngError(f"more than one {kind.decode()} chunk")
            yield kind, body
        seen.add(kind)
        last = kind
    if IDAT not in seen:
        raise PngError("no image data (IDAT)")


@contextmanager
def _quiet_stderr():
    """libpng prints warnings (e.g. on interlaced files) straight to fd 2: keep a CLI's output clean."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def decode_samples(data: bytes, ihdr: Ihdr) -> np.ndarray:
    """(H, W, C) samples exactly as stored: uint16 for 16-bit files, else uint8 holding 0..2^depth-1
    (palette files: the indices). Colour keys (tRNS) are not applied: they stay a chunk."""
    shape = (ihdr.height, ihdr.width, ihdr.channels)
    try:
        if ihdr.depth == 16:
            import imagecodecs

            with _quiet_stderr():
                array = imagecodecs.png_decode(data)
            array = array.reshape(ihdr.height, ihdr.width, -1)[..., :ihdr.channels]  # libpng adds alpha for tRNS
        else:
            from PIL import Image

            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                image.load()
                array = np.asarray(image)
            if ihdr.colour_type == 0 and ihdr.depth in (2, 4):
                array = array // (255 // (2 ** ihdr.depth - 1))
            array = array.astype(np.uint8).reshape(shape)
    except Exception as err:  # every decoder failure of a damaged file is one line
        raise PngError(f"image data does not decode ({type(err).__name__}: {err})") from None
    if array.shape != shape:
        raise PngError(f"decoded {array.shape}, IHDR says {shape}")
    return np.ascontiguousarray(array)


def _rows(samples: np.ndarray, depth: int) -> np.ndarray:
    """Scanline bytes (H, row bytes) of samples at `depth`, unfiltered."""
    height, width, channels = samples.shape
    if depth == 16:
        return samples.astype(">u2").view(np.uint8).reshape(height, width * channels * 2)
    if depth == 8:
        return samples.reshape(height, width * channels).astype(np.uint8)
    bits = np.unpackbits(samples.reshape(height, width, 1).astype(np.uint8), axis=2)[:, :, 8 - depth:]
    return np.packbits(bits.reshape(height, width * depth), axis=1)


def _filtered(rows: np.ndarray, bpp: int, above: np.ndarray | None = None) -> bytes:
    """Each row with the filter (none, sub, up, average, Paeth) of least absolute sum (libpng's
    heuristic); `above`: the scanline before the first (a band of a larger image), else zeros."""
    out = []
    previous = np.zeros(rows.shape[1], dtype=np.int16) if above is None else above.astype(np.int16)
    slab = max(1, (1 << 19) // max(1, rows.shape[1]))  # memory: a slab of ~0.5 M bytes of rows at a time
    for start in range(0, rows.shape[0], slab):
        raw = rows[start:start + slab].astype(np.int16)
        up = np.vstack([previous[None], raw[:-1]])
        left = np.zeros_like(raw)
        left[:, bpp:] = raw[:, :-bpp]
        upleft = np.zeros_like(raw)
        upleft[:, bpp:] = up[:, :-bpp]
        p = left + up - upleft
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        candidates = np.stack([raw, raw - left, raw - up, raw - ((left + up) >> 1), raw - paeth]) & 0xFF
        cost = np.where(candidates > 127, 256 - candidates, candidates).sum(axis=2)
        choice = cost.argmin(axis=0)
        best = candidates[choice, np.arange(len(raw))].astype(np.uint8)
        out.append(np.hstack([choice.astype(np.uint8)[:, None], best]).tobytes())
        previous = raw[-1]
    return b"".join(out)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode(samples: np.ndarray, ihdr: Ihdr, chunks: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A PNG of `samples` (as decode_samples returns them) with this IHDR, Adam7-interlaced if it says
    so; every chunk of `chunks` (read_chunks' list) written back verbatim in its place."""
    channels = samples.shape[2]
    bpp = max(1, channels * ihdr.depth // 8)
    if ihdr.interlace:
        passes = [samples[y0::dy, x0::dx] for x0, y0, dx, dy in ADAM7]
        raw = b"".join(_filtered(_rows(p, ihdr.depth), bpp) for p in passes if p.size)
    else:
        raw = _filtered(_rows(samples, ihdr.depth), bpp)
    parts = [SIGNATURE]
    for kind, body in chunks or [(b"IHDR", b""), (IDAT, b"")]:
        if kind == b"IHDR":
            parts.append(_chunk(b"IHDR", ihdr.pack()))
        elif kind == IDAT:
            parts.append(_chunk(IDAT, zlib.compress(raw, 9)))
        else:
            parts.append(_chunk(kind, body))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def text_chunks(icc: bytes | None, exif: bytes | None, xmp: bytes | None) -> list[tuple[bytes, bytes]]:
    """PNG chunks that carry another format's ICC profile, EXIF and XMP (a JPEG or WebP decoded to PNG)."""
    out = []
    if icc:
        out.append((b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if exif:
        out.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    if xmp:
        out.append((b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp))
    return out

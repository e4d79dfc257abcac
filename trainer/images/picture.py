"""An image file as pixlm codes it: its samples at full depth, and what else makes the file what it
is (PNG chunks byte for byte, TIFF tags, PNM maxval), so that decoding writes it back.

Read: PNG (every colour type and depth, interlaced or not), TIFF (8/16-bit gray/RGB, alpha),
binary PGM/PPM (any maxval) exactly; other formats Pillow reads (JPEG, WebP, BMP, ...) as their
8-bit pixels, with ICC, EXIF and XMP kept as PNG chunks (those files decode to PNG). Anything
that cannot be held exactly is refused with one line (ImageModeError), never reduced.
"""

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from trainer.images import limit, png, pnm, tiff
from trainer.errors import PixlmError

LAYOUTS = ("L", "LA", "RGB", "RGBA", "P")  # P: palette indices, the palette in a PLTE chunk


class ImageModeError(PixlmError):
    """An image pixlm cannot code exactly (or not at all): one line saying why."""


@dataclass
class Picture:
    samples: np.ndarray  # (H, W, C): uint16 for 16-bit files, else uint8 holding 0 .. 2^depth - 1
    depth: int  # bits per sample as the file stores them (PNM: the bits of its maxval)
    layout: str  # one of LAYOUTS
    format: str = "png"  # written back as: png, tiff or pnm
    chunks: list = field(default_factory=list)  # png: png.read_chunks' list (IHDR and the IDAT marker included)
    record: dict = field(default_factory=dict)  # tiff: tiff.decode's record; pnm: {"maxval", "magic"}
    notes: list = field(default_factory=list)  # what the file held that is not carried (said by the encoder)

    @property
    def height(self) -> int:
        return self.samples.shape[0]

    @property
    def width(self) -> int:
        return self.samples.shape[1]

    @property
    def channels(self) -> int:
        return self.samples.shape[2]

    @property
    def ihdr(self) -> png.Ihdr:
        return png.Ihdr.parse(next(body for kind, body in self.chunks if kind == b"IHDR"))

    @property
    def plain(self) -> bool:
        """An 8-bit L/LA/RGB/RGBA PNG with nothing but its pixels: what format 2 streams hold."""
        return (self.format == "png" and self.depth == 8 and self.layout != "P" and self.ihdr.interlace == 0
                and all(kind in (b"IHDR", png.IDAT) for kind, _ in self.chunks))

    def stripped(self) -> "Picture":
        """The same pixels without metadata (what `--strip` codes): palette and transparency stay."""
        keep = [(k, b) for k, b in self.chunks if k in (b"IHDR", b"PLTE", png.IDAT) or k in png.PIXEL_MEANING]
        record = {**self.record, "tags": {}} if self.format == "tiff" else self.record
        return replace(self, chunks=keep, record=record)

    # the format description a stream carries: entries (4-byte tag, bytes)
    def entries(self) -> list[tuple[bytes, bytes]]:
        head = json.dumps({"format": self.format, "layout": self.layout, "depth": self.depth,
                           "record": self.record}, sort_keys=True).encode()
        return [(b"FMT ", head)] + [(kind, body) for kind, body in self.chunks]

    @classmethod
    def from_entries(cls, samples: np.ndarray, entries: list[tuple[bytes, bytes]]) -> "Picture":
        if not entries or entries[0][0] != b"FMT ":
            raise ValueError("no format entry")
        head = json.loads(entries[0][1])
        return cls(samples, head["depth"], head["layout"], head["format"], list(entries[1:]), head["record"])


def plain_picture(array: np.ndarray) -> Picture:
    """An (H, W, C) uint8 or uint16 array as a PNG picture of that depth with nothing but its pixels."""
    height, width, channels = array.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    depth = 16 if array.dtype == np.uint16 else 8
    ihdr = png.Ihdr(width, height, depth, colour, 0)
    return Picture(np.ascontiguousarray(array), depth, png.COLOUR_TYPES[colour][0], "png",
                   [(b"IHDR", ihdr.pack()), (png.IDAT, b"")])


def sample_bytes(samples: np.ndarray) -> bytes:
    """The bytes a stream's sample CRC covers: uint8 as they are, uint16 little-endian; row-major."""
    return samples.astype("<u2").tobytes() if samples.dtype == np.uint16 else samples.tobytes()


def _from_png(data: bytes) -> Picture:
    chunks = png.read_chunks(data)
    ihdr = png.Ihdr.parse(chunks[0][1])
    if ihdr.colour_type == 3 and not any(kind == b"PLTE" for kind, _ in chunks):
        raise png.PngError("palette image without a PLTE chunk")
    samples = png.decode_samples(data, ihdr)
    if ihdr.colour_type == 3:
        palette_size = len(next(body for kind, body in chunks if kind == b"PLTE")) // 3
        if samples.max(initial=0) >= palette_size:
            raise png.PngError(f"palette index {samples.max()} beyond the {palette_size}-colour PLTE")
    return Picture(samples, ihdr.depth, ihdr.layout, "png", chunks)


def _from_pillow(image, name: str) -> Picture:
    """Formats other than PNG/TIFF/PNM, and PIL images: their pixels exactly (palettes kept as PLTE,
    1-bit as 0/255 gray, I;16 as 16-bit gray), ICC/EXIF/XMP as PNG chunks (such inputs decode to PNG)."""
    mode = image.mode
    if mode == "PA" or (mode == "P" and image.palette is not None and image.palette.mode != "RGB"):
        image, mode = image.convert("RGBA"), "RGBA"
    if mode == "1":
        image, mode = image.convert("L"), "L"
    xmp = image.info.get("xmp")
    extra = png.text_chunks(image.info.get("icc_profile"), image.info.get("exif"),
                            xmp.encode() if isinstance(xmp, str) else xmp)
    if mode == "P":
        return _palette_picture(image, extra)
    if mode == "I;16":
        picture = plain_picture(np.asarray(image).astype(np.uint16).reshape(image.height, image.width, 1))
    elif mode in ("L", "LA", "RGB", "RGBA"):
        picture = plain_picture(np.asarray(image).reshape(image.height, image.width, -1))
    else:
        raise ImageModeError(f"{name}: mode {mode} is not supported (pixlm codes gray, gray+alpha, RGB, RGBA and "
                             "palette images of 1..16 bits; it does not reduce samples to fit)")
    picture.chunks[1:1] = extra
    return picture


def _palette_picture(image, extra: list) -> Picture:
    """A palette image as a palette PNG: indices coded, PLTE and transparency (tRNS) kept."""
    indices = np.asarray(image, dtype=np.uint8).reshape(image.height, image.width, 1)
    palette = bytes(image.getpalette() or []) or bytes(v for i in range(256) for v in (i, i, i))  # Pillow's default: gray
    if indices.max(initial=0) >= len(palette) // 3:
        raise ImageModeError(f"palette index {indices.max()} beyond the {len(palette) // 3}-colour palette")
    chunks = [(b"IHDR", png.Ihdr(image.width, image.height, 8, 3, 0).pack()), *extra, (b"PLTE", palette)]
    transparency = image.info.get("transparency")
    if isinstance(transparency, int):
        chunks.append((b"tRNS", bytes([255] * transparency + [0])))
    elif isinstance(transparency, bytes):
        chunks.append((b"tRNS", transparency))
    return Picture(indices, 8, "P", "png", chunks + [(png.IDAT, b"")])


def read_picture(source) -> Picture:
    """The Picture of a path, a PIL image or an (H, W, C) uint8 array; ImageModeError (one line) otherwise."""
    from PIL import Image

    if isinstance(source, np.ndarray):
        if source.dtype not in (np.uint8, np.uint16) or source.ndim != 3 or source.shape[2] not in (1, 2, 3, 4):
            raise ImageModeError(f"an array of {source.dtype} {source.shape}: give (H, W, 1..4) uint8 or uint16")
        if source.size == 0:
            raise ImageModeError(f"empty image ({source.shape[1]}x{source.shape[0]})")
        return plain_picture(source)
    if isinstance(source, Image.Image):
        return _from_pillow(source, "image")
    name = str(source)
    try:
        data = Path(source).read_bytes()
    except IsADirectoryError:
        raise ImageModeError(f"{name}: is a folder") from None
    return picture_of_bytes(data, name)


def picture_of_bytes(data: bytes, name: str = "image", max_pixels: int | None = limit.MAX_PIXELS) -> Picture:
    """The Picture of an image file's bytes (`name` says which file in a refusal); a declared size
    above `max_pixels` is refused before any sample is decoded."""
    from PIL import Image

    if not data:
        raise ImageModeError(f"{name}: empty file")
    limit.check(limit.declared_size(data), name, max_pixels)
    try:
        if data.startswith(png.SIGNATURE):
            picture = _from_png(data)
        elif tiff.is_tiff(data):
            samples, record, dropped = tiff.decode(data)
            layout = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[samples.shape[2]]
            notes = [f"TIFF tags not carried: {', '.join(dropped)}"] if dropped else []
            picture = Picture(samples, 8 * samples.itemsize, layout, "tiff", [], record, notes)
        elif pnm.is_pnm(data):
            samples, maxval, magic = pnm.decode(data)
            picture = Picture(samples, maxval.bit_length(), "L" if samples.shape[2] == 1 else "RGB", "pnm", [],
                              {"maxval": maxval})
        else:
            import io

            try:
                with limit.unlimited_pillow(), Image.open(io.BytesIO(data)) as image:  # pixlm's limit holds
                    image.load()
                    picture = _from_pillow(image, name)
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
                if isinstance(err, ImageModeError):
                    raise
                reason = "unknown format" if isinstance(err, Image.UnidentifiedImageError) else str(err).splitlines()[0]
                raise ImageModeError(f"{name}: not a readable image ({reason})") from None
    except (png.PngError, tiff.TiffError, pnm.PnmError) as err:
        raise ImageModeError(f"{name}: {err}") from None
    if picture.samples.size == 0:
        raise ImageModeError(f"{name}: empty image ({picture.width}x{picture.height})")
    return picture


def picture_bytes(picture: Picture) -> bytes:
    """The file a Picture stands for: PNG, TIFF or PNM."""
    if picture.format == "png":
        return png.encode(picture.samples, picture.ihdr, picture.chunks)
    if picture.format == "tiff":
        return tiff.encode(picture.samples, picture.record)
    if picture.format == "pnm":
        return pnm.encode(picture.samples, picture.record["maxval"])
    raise ValueError(f"unknown picture format {picture.format!r}")


SUFFIXES = {"png": ".png", "tiff": ".tif", "pnm": ".ppm"}


def suffix_of(picture_format: str, channels: int = 3) -> str:
    """The file suffix a decoded picture is written with."""
    if picture_format == "pnm":
        return ".pgm" if channels == 1 else ".ppm"
    return SUFFIXES[picture_format]

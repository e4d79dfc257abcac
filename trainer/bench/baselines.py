"""Classical lossless codecs for `pixlm bench`: real encode -> bytes -> decode -> bit-exact check.

Each baseline turns an (H, W, C) uint8 array into the bytes of a real file and back:

- png: Pillow, optimize=True (zlib level 9 plus filter search); 16-bit: libpng, zlib level 9 (imagecodecs)
- webp: libwebp lossless, method 6, quality 100 (imagecodecs)
- jpegxl-e7 / jpegxl-e9 / jpegxl-e10: libjxl lossless (distance 0), effort 7 / 9 / 10 (imagecodecs)
- jpeg2000: OpenJPEG reversible 5/3 wavelet, J2K codestream (imagecodecs)
- paq8px, paq8px-N: the paq8px program (GPL, not a library; level 8 / N), through binary PGM/PPM/PAM
  files, when a binary is found (--paq8px PATH, $PIXLM_PAQ8PX, PATH); not in the defaults, and not in
  BASELINES (it needs its program): trainer/bench/paq8px.py
- jpegls-hp1: CharLS lossless, as JPEG-LS is used on colour: HP1's reversible colour transform
  (R - G, G, B - G, modulo the sample range; CharLS's `colorTransformation` HP1) and each plane
  coded as its own JPEG-LS image; the file is the plane count, each codestream's length (4 bytes)
  and the codestreams. `jpegls` (not in the defaults): CharLS on the interleaved pixels, no transform.

File baselines (`pixlm bench --files`: a JPEG set, each file restored byte for byte): each turns a
file's bytes into its own format and back, compared byte for byte with the file:

- lepton: Lepton (lepton-jpeg-python, the Rust port of Dropbox's Lepton), the library's defaults
  (several partitions where the image is tall enough, each decoded on its own thread)
- jpegxl-jpeg: libjxl's lossless JPEG transcoding (imagecodecs' jpegxl_encode_jpeg, as `cjxl` does it
  to a JPEG input), restored by `jpegxl_decode_jpeg` (as `djxl` to a .jpg)

Every codec but WebP takes 16-bit samples too (a 16-bit set: `pixlm bench --baselines png,jpegxl-e9`).
Gray (L) and gray+alpha (LA) images go to WebP as RGB / RGBA with the gray value copied into R, G
and B (WebP has no gray mode); the decoded channels must all equal the gray value. The decoded array
is compared with the original by `BaselineCodec.round_trip`; any difference is a failure, never
silently accepted.
"""

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from trainer.tokenize.pixels import MODES


class BaselineError(ValueError):
    """An unknown baseline name or a codec library that is not installed."""


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError:
        raise BaselineError("the WebP/JPEG-XL/JPEG 2000/JPEG-LS baselines need imagecodecs: "
                            "pip install -e '.[bench]'") from None
    return imagecodecs


def _png_encode(a, threads):
    if a.dtype == np.uint16:  # Pillow cannot write 16-bit colour: libpng, zlib level 9
        return _imagecodecs().png_encode(np.ascontiguousarray(a if a.shape[2] > 1 else a[:, :, 0]), level=9)
    mode = MODES[a.shape[2]]
    buf = io.BytesIO()
    Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a, mode=mode).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _png_decode(data, threads, like):
    if like.dtype == np.uint16:
        return _imagecodecs().png_decode(data)
    image = Image.open(io.BytesIO(data))
    image.load()
    return np.asarray(image)


def _webp_encode(a, threads):
    if a.dtype != np.uint8:
        raise BaselineError("WebP holds 8-bit samples only")
    if a.shape[2] in (1, 2):  # gray -> RGB(A) with equal channels
        a = np.concatenate([np.repeat(a[:, :, :1], 3, 2), a[:, :, 1:]], 2)
    return _imagecodecs().webp_encode(np.ascontiguousarray(a), level=100, lossless=True, method=6,
                                      numthreads=threads)


def _webp_decode(data, threads, like):
    return _imagecodecs().webp_decode(data, hasalpha=like.shape[2] in (2, 4))  # keep an all-opaque alpha


def _webp_back(decoded, original):
    """WebP's RGB(A) back to the original's gray channels, only when R == G == B everywhere."""
    if original.shape[2] in (1, 2) and decoded.ndim == 3 and decoded.shape[2] >= 3:
        rgb = decoded[:, :, :3]
        if (rgb == rgb[:, :, :1]).all():
            return np.concatenate([rgb[:, :, :1], decoded[:, :, 3:]], 2)
    return decoded


def _jxl(effort):
    def encode(a, threads):
        return _imagecodecs().jpegxl_encode(np.ascontiguousarray(a if a.shape[2] > 1 else a[:, :, 0]),
                                            lossless=True, distance=0, effort=effort, numthreads=threads)
    return encode


def _jxl_decode(data, threads, like):
    return _imagecodecs().jpegxl_decode(data, numthreads=threads)


def _j2k_encode(a, threads):
    return _imagecodecs().jpeg2k_encode(np.ascontiguousarray(a if a.shape[2] > 1 else a[:, :, 0]),
                                        reversible=True, codecformat="j2k", numthreads=threads)


def _j2k_decode(data, threads, like):
    return _imagecodecs().jpeg2k_decode(data, numthreads=threads)


def _jls_encode(a, threads):
    return _imagecodecs().jpegls_encode(np.ascontiguousarray(a if a.shape[2] > 1 else a[:, :, 0]), level=0)


def _jls_decode(data, threads, like):
    return _imagecodecs().jpegls_decode(data)


def _jls_hp1_encode(a, threads):
    planes = [a[:, :, i].astype(np.int64) for i in range(a.shape[2])]
    if len(planes) >= 3:  # HP1: R - G, G, B - G modulo the range (alpha as it is)
        span = 1 << (8 * a.dtype.itemsize)
        planes[0], planes[2] = (planes[0] - planes[1]) % span, (planes[2] - planes[1]) % span
    streams = [bytes(_imagecodecs().jpegls_encode(np.ascontiguousarray(p.astype(a.dtype)), level=0)) for p in planes]
    return bytes([len(streams)]) + b"".join(len(x).to_bytes(4, "big") for x in streams) + b"".join(streams)


def _jls_hp1_decode(data, threads, like):
    count = data[0]
    sizes = [int.from_bytes(data[1 + 4 * i:5 + 4 * i], "big") for i in range(count)]
    starts = np.cumsum([1 + 4 * count] + sizes)
    planes = [np.asarray(_imagecodecs().jpegls_decode(data[a:b])).astype(np.int64) for a, b in zip(starts, starts[1:])]
    if len(planes) >= 3:
        span = 1 << (8 * like.dtype.itemsize)
        planes[0], planes[2] = (planes[0] + planes[1]) % span, (planes[2] + planes[1]) % span
    return np.stack(planes, 2).astype(like.dtype)


@dataclass(frozen=True)
class BaselineCodec:
    name: str
    description: str
    threaded: bool  # whether the library is given the thread count (libjxl, libwebp, OpenJPEG)
    _encode: Callable
    _decode: Callable
    _back: Callable = staticmethod(lambda decoded, original: decoded)

    def encode(self, array: np.ndarray, threads: int = 1) -> bytes:
        return bytes(self._encode(array, threads))

    def decode(self, data: bytes, like: np.ndarray, threads: int = 1) -> np.ndarray:
        """Decode to the original's (H, W, C) layout (gray comes back as (H, W))."""
        decoded = np.asarray(self._decode(data, threads, like))
        if decoded.ndim == 2:
            decoded = decoded[:, :, None]
        return self._back(decoded, like)


BASELINES = {
    "png": BaselineCodec("png", "PNG, Pillow optimize=True", False, _png_encode, _png_decode),
    "webp": BaselineCodec("webp", "WebP lossless, method 6, quality 100 (libwebp)", True,
                          _webp_encode, _webp_decode, staticmethod(_webp_back)),
    "jpegxl-e7": BaselineCodec("jpegxl-e7", "JPEG-XL lossless (distance 0), effort 7 (libjxl)", True,
                               _jxl(7), _jxl_decode),
    "jpegxl-e9": BaselineCodec("jpegxl-e9", "JPEG-XL lossless (distance 0), effort 9 (libjxl)", True,
                               _jxl(9), _jxl_decode),
    "jpegxl-e10": BaselineCodec("jpegxl-e10", "JPEG-XL lossless (distance 0), effort 10 (libjxl)", True,
                                _jxl(10), _jxl_decode),
    "jpeg2000": BaselineCodec("jpeg2000", "JPEG 2000 reversible 5/3, J2K codestream (OpenJPEG)", True,
                              _j2k_encode, _j2k_decode),
    "jpegls-hp1": BaselineCodec("jpegls-hp1", "JPEG-LS lossless, HP1 colour transform, plane by plane (CharLS)",
                                False, _jls_hp1_encode, _jls_hp1_decode),
    "jpegls": BaselineCodec("jpegls", "JPEG-LS lossless, interleaved, no colour transform (CharLS)", False,
                            _jls_encode, _jls_decode),
}
DEFAULT_BASELINES = ("png", "webp", "jpegxl-e7", "jpegxl-e9", "jpegxl-e10", "jpeg2000", "jpegls-hp1")
REFERENCE = "jpegxl-e9"  # decode speeds are reported as a ratio to this codec's, measured in the same run


# -- file baselines (--files) -------------------------------------------------------------------
def _lepton_module():
    try:
        import lepton_jpeg_python
    except ImportError:
        return None
    return lepton_jpeg_python


@dataclass(frozen=True)
class FileCodec:
    """A lossless recompressor of files: a file's bytes in, its own bytes out, the same file back."""
    name: str
    description: str
    threaded: bool
    _encode: Callable
    _decode: Callable
    files = True  # the bench gives it the file's bytes, not the pixels

    def encode(self, data: bytes, threads: int = 1) -> bytes:
        return bytes(self._encode(data, threads))

    def decode(self, data: bytes, threads: int = 1) -> bytes:
        return bytes(self._decode(data, threads))


FILE_BASELINES = {
    "lepton": FileCodec("lepton", "Lepton (lepton-jpeg-python, its defaults: several partitions on their own threads)",
                        True, lambda d, t: _lepton_module().compress_bytes(d),
                        lambda d, t: _lepton_module().decompress_bytes(d)),
    "jpegxl-jpeg": FileCodec("jpegxl-jpeg", "JPEG-XL lossless JPEG transcoding (libjxl through imagecodecs, as cjxl / djxl)",
                             True, lambda d, t: _imagecodecs().jpegxl_encode_jpeg(d, numthreads=t),
                             lambda d, t: _imagecodecs().jpegxl_decode_jpeg(d, numthreads=t)),
}
DEFAULT_FILE_BASELINES = ("lepton", "jpegxl-jpeg")
FILE_REFERENCE = "lepton"  # --files: speeds as a ratio to Lepton's


def get_file_baselines(names: str | list[str] | None, skipped: list[str] | None = None) -> list:
    """File baselines by name (None: the defaults); unknown names and pixel baselines: BaselineError.
    Lepton where lepton-jpeg-python is not installed: left out with one line in `skipped`."""
    if names is None:
        names = list(DEFAULT_FILE_BASELINES)
    elif isinstance(names, str):
        names = [] if names.strip().lower() in ("", "none") else [n.strip() for n in names.split(",")]
    unknown = [n for n in names if n not in FILE_BASELINES]
    if unknown:
        raise BaselineError(f"--files: {', '.join(map(repr, unknown))} cannot code a file byte for byte; "
                            f"file baselines: {', '.join(FILE_BASELINES)}")
    out = []
    for name in dict.fromkeys(names):
        if name == "lepton" and _lepton_module() is None:
            line = "lepton: skipped: lepton-jpeg-python is not installed (pip install lepton-jpeg-python)"
            if skipped is not None and line not in skipped:
                skipped.append(line)
            continue
        if name == "jpegxl-jpeg":
            _imagecodecs()
        out.append(FILE_BASELINES[name])
    return out


def get_baselines(names: str | list[str] | None, paq8px: str | None = None, skipped: list[str] | None = None) -> list:
    """Baselines by name ('png,webp' or a list); '' or 'none' gives none. Unknown names: BaselineError.

    `paq8px` / `paq8px-N` run the paq8px program given by `paq8px` (a path), else $PIXLM_PAQ8PX, else
    found on PATH; where there is none, the name is left out and its one-line reason appended to
    `skipped` (the bench prints it and goes on). A path given that is not a program: BaselineError.
    """
    from trainer.bench import paq8px as external

    if names is None:
        names = list(DEFAULT_BASELINES)
    if isinstance(names, str):
        names = [] if names.strip().lower() in ("", "none") else [n.strip() for n in names.split(",")]
    unknown = [n for n in names if n not in BASELINES and external.level_of(n) is None]
    if any(n in FILE_BASELINES for n in unknown):
        raise BaselineError(f"{', '.join(n for n in unknown if n in FILE_BASELINES)}: a file baseline "
                            "(it codes a JPEG file, not pixels): add --files")
    if unknown:
        raise BaselineError(f"unknown baseline {', '.join(map(repr, unknown))}; known: {', '.join(BASELINES)}, "
                            f"{external.NAME} (level {external.DEFAULT_LEVEL}; {external.NAME}-N: level N, "
                            f"{external.LEVELS[0]}..{external.LEVELS[-1]})")
    if any(n != "png" and n in BASELINES for n in names):
        _imagecodecs()
    out = []
    for name in dict.fromkeys(names):
        if name in BASELINES:
            out.append(BASELINES[name])
            continue
        try:
            codec, reason = external.make(name, paq8px)
        except ValueError as err:
            raise BaselineError(str(err)) from None
        if codec is not None:
            out.append(codec)
        elif skipped is not None and reason not in skipped:
            skipped.append(reason)
    return out


def library_versions() -> dict:
    out = {"pillow": Image.__version__}
    try:
        from importlib import metadata

        out["lepton-jpeg-python"] = metadata.version("lepton-jpeg-python")
    except Exception:  # noqa: BLE001 - not installed
        pass
    try:
        import imagecodecs

        out["imagecodecs"] = imagecodecs.__version__
        for name in ("jpegxl", "webp", "jpeg2k", "jpegls"):
            version = getattr(imagecodecs, name + "_version", None)
            if version:
                out[name] = version()
    except ImportError:
        pass
    return out

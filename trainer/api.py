"""pixlm's Python API: lossless coding of images in memory or on disk, with a bundle by name or path.

    from trainer import api

    data = api.encode("photo.png")                      # .pxl bytes, the default bundle
    data = api.encode(array, bundle="pixlm-online-fast")  # (H, W, C) uint8/uint16 array, PIL image or path
    pixels = api.decode(data)                           # (H, W, C) array at the original's sample depth
    api.encode_file("scan.tif", "scan.pxl")             # and decode_file: the CLI's file handling
    api.info(data)["bpsp"]                              # what the stream holds, without loading a model

Every refusal is a `PixlmError` (a ValueError) with a one-line message, as the CLI prints it:
a damaged stream, a wrong bundle, an unsupported image. Codecs are loaded once per bundle and
kept (`load`).
"""

from functools import lru_cache
from pathlib import Path

import numpy as np

from trainer.codec.bundle import BundleError, Bundle, default_bundle, find_bundle, open_bundle, resolve_bundle
from trainer.codec.container import FormatError
from trainer.codec.info import stream_info
from trainer.codec.stream import CodecError, Report
from trainer.errors import PixlmError
from trainer.images.picture import Picture

__all__ = ["encode", "decode", "decode_picture", "encode_file", "decode_file", "info", "load", "bundle_path",
           "PixlmError", "CodecError", "BundleError", "FormatError"]


def bundle_path(bundle: str | Path | None) -> Path | None:
    """A bundle folder from a path or a shipped bundle's name (`pixlm-online-max`); None: the default.
    The CLI's --bundle resolves the same way (trainer.codec.bundle.resolve_bundle)."""
    return None if bundle is None else resolve_bundle(bundle)


@lru_cache(maxsize=8)
def _codec(folder: str | None, threads: int | None):
    from trainer.codec.registry import open_codec

    bundle = default_bundle() if folder is None else open_bundle(Path(folder))
    return open_codec(bundle, progress=False, threads=threads)


def load(bundle: str | Path | Bundle | None = None, threads: int | None = None):
    """The codec of a bundle (name, folder or Bundle; None: the default), loaded once and kept."""
    if isinstance(bundle, Bundle):
        bundle = bundle.path
    folder = bundle_path(bundle)
    return _codec(None if folder is None else str(folder.resolve()), threads)


def _decoder(data: bytes, bundle, threads):
    """The codec for a stream: the given bundle, or the one whose id the stream names."""
    if bundle is not None:
        return load(bundle, threads)
    return load(find_bundle(stream_info(data)["bundle_id_bytes"]), threads)


def encode(image, bundle: str | Path | None = None, *, strip: bool = False, threads: int | None = None) -> bytes:
    """.pxl bytes of an image: a path, a PIL image or an (H, W, C) uint8/uint16 array."""
    data, _ = load(bundle, threads).encode_bytes(image, strip=strip)
    return data


def decode_picture(data: bytes, bundle: str | Path | None = None, *, threads: int | None = None) -> Picture:
    """The decoded picture of .pxl bytes: samples at full depth, format and metadata of the original."""
    return _decoder(bytes(data), bundle, threads).decode_picture(bytes(data))


def decode(data: bytes, bundle: str | Path | None = None, *, threads: int | None = None) -> np.ndarray:
    """The (H, W, C) samples of .pxl bytes (uint8, or uint16 for deeper originals)."""
    return decode_picture(data, bundle, threads=threads).samples


def encode_file(source, out, bundle: str | Path | None = None, *, strip: bool = False,
                threads: int | None = None, force: bool = False) -> Report:
    """Encode an image file into `out` (written whole; an existing file only with force=True)."""
    if Path(out).exists() and not force:
        raise CodecError(f"{out} exists (pass force=True to replace it)")
    return load(bundle, threads).encode(source, out, strip=strip)


def decode_file(source, out, bundle: str | Path | None = None, *, threads: int | None = None,
                force: bool = False) -> Report:
    """Decode a .pxl file into `out`, in the original's format (PNG, TIFF, PNM) with its metadata."""
    if Path(out).exists() and not force:
        raise CodecError(f"{out} exists (pass force=True to replace it)")
    data = Path(source).read_bytes()
    codec = _decoder(data, bundle, threads)
    _, report = codec.decode(source, out, samples=False)
    return report


def info(data: bytes | str | Path) -> dict:
    """What a .pxl stream holds (header, bundle, size, depth, metadata, bpsp) without loading a
    model; `data` is the bytes or a path."""
    raw = Path(data).read_bytes() if isinstance(data, (str, Path)) else bytes(data)
    out = stream_info(raw)
    out.pop("bundle_id_bytes")
    return out

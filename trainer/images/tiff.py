"""Single-image TIFF (8 or 16 bits per sample, gray or RGB, optional alpha) through tifffile,
with the tags that describe the image kept and written back: ICC profile, XMP, description,
artist, copyright, software, date, resolution. Other tags (EXIF and GPS IFDs, private tags) are
not carried: `dropped` names them, and the encoder says so."""

import base64
import io

import numpy as np
from trainer.errors import PixlmError

# tag code -> name: the tags a decoded TIFF gets back (their values as tifffile reads them)
KEPT = {270: "ImageDescription", 305: "Software", 306: "DateTime", 315: "Artist", 33432: "Copyright",
        282: "XResolution", 283: "YResolution", 296: "ResolutionUnit", 700: "XMP", 34675: "InterColorProfile"}
# tags that only describe the layout of the samples: rewritten by the writer, not metadata
STRUCTURE = {254, 256, 257, 258, 259, 262, 273, 274, 277, 278, 279, 284, 292, 293, 317, 322, 323, 324, 325, 338,
             339, 284, 266, 297, 320}


class TiffError(PixlmError):
    """A TIFF pixlm cannot code exactly."""


def is_tiff(data: bytes) -> bool:
    return data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _jsonable(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "value"):  # enums (ResolutionUnit)
        return int(value.value)
    return value


def _value(item):
    return base64.b64decode(item["b64"]) if isinstance(item, dict) else item


def _tifffile():
    import logging

    import tifffile

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # a damaged file is our one error line, not its log
    return tifffile


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of the first image, read from its directory alone; None where it has none."""
    try:
        with _tifffile().TiffFile(io.BytesIO(data)) as tif:
            return int(tif.pages[0].imagewidth), int(tif.pages[0].imagelength)
    except Exception:  # noqa: BLE001 (decode gives a damaged file's one-line reason)
        return None


def decode(data: bytes) -> tuple[np.ndarray, dict, list[str]]:
    """(samples (H, W, C), record of what to write back, names of tags not carried)."""
    tifffile = _tifffile()
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            if len(tif.pages) == 0:
                raise TiffError("TIFF holds no readable image (corrupt)")
            if len(tif.pages) != 1:
                raise TiffError(f"{len(tif.pages)} images in one TIFF; pixlm codes single-image TIFFs")
            page = tif.pages[0]
            photometric = int(page.photometric)
            if photometric not in (1, 2) or page.dtype not in (np.uint8, np.uint16) or page.bitspersample not in (8, 16):
                raise TiffError(f"TIFF with photometric {page.photometric.name}, {page.bitspersample}-bit "
                                f"{page.dtype} samples: pixlm codes 8/16-bit unsigned gray or RGB TIFFs")
            samples = page.asarray()
            channels = page.samplesperpixel
            if page.planarconfig == 2 and channels > 1:  # separate planes: (C, H, W)
                samples = np.moveaxis(samples, 0, -1)
            samples = np.ascontiguousarray(samples.reshape(page.imagelength, page.imagewidth, channels))
            if channels - (1 if photometric == 1 else 3) not in (0, 1):
                raise TiffError(f"TIFF with {channels} samples per pixel: pixlm codes gray, gray+alpha, RGB or RGBA")
            extra = [int(e) for e in page.extrasamples] if channels in (2, 4) else []
            record = {"photometric": photometric, "extrasamples": extra, "byteorder": tif.byteorder,
                      "tags": {str(code): _jsonable(page.tags[code].value) for code in KEPT if code in page.tags}}
            dropped = sorted(t.name for t in page.tags.values() if t.code not in KEPT and t.code not in STRUCTURE)
    except TiffError:
        raise
    except Exception as err:
        raise TiffError(f"TIFF does not decode ({type(err).__name__}: {err})") from None
    return samples, record, dropped


def encode(samples: np.ndarray, record: dict, strip: bool = False) -> bytes:
    import tifffile

    tags = {} if strip else {int(k): _value(v) for k, v in record["tags"].items()}
    extratags = [(code, "B" if code == 700 else "s", 0, tags[code], True) for code in (315, 33432) if code in tags]
    if 700 in tags:
        extratags = [t for t in extratags if t[0] != 700] + [(700, "B", len(tags[700]), tags[700], True)]
    resolution = None
    if 282 in tags and 283 in tags:
        resolution = (tuple(tags[282]), tuple(tags[283]), tags.get(296, 2))
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, samples if samples.shape[2] > 1 else samples[..., 0],
                     photometric="minisblack" if record["photometric"] == 1 else "rgb", planarconfig="contig",
                     extrasamples=record["extrasamples"] or None, compression="zlib", byteorder=record["byteorder"],
                     description=tags.get(270), software=tags.get(305) or False, datetime=tags.get(306),
                     resolution=resolution, iccprofile=tags.get(34675), extratags=extratags, metadata=None)
    return buffer.getvalue()

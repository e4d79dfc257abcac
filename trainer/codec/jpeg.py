"""JPEG files in, the same JPEG files out, smaller (format version 5, representation 4 `jpeg`).

A JPEG file's pixels cost a lossless pixel coder 2-3x the file, and the pixels do not give the file
back. So a JPEG input is coded at the level of its coefficients by a lossless JPEG coder that
restores the very same bytes, headers, metadata (EXIF, ICC, XMP, comments), restart markers and
trailing bytes included:

- `pixlm` (trainer.codec.jpeg_coefficients): pixlm's own, for baseline files (one sequential
  Huffman scan; progressive ones are left to the others): the coefficients through the engine's
  context-mixing model (trainer.engine.jpeg_model);
- `lepton` (`lepton-jpeg-python`, the Rust port of Dropbox's Lepton, maintained by Microsoft):
  the coefficients through an arithmetic coder in the contexts of their neighbours; run as one
  partition (`max_partitions` 1: 1.8 % smaller than its default of several on 40 photos, which
  only buys decoding threads);
- `jpegxl` (libjxl's lossless JPEG transcoding through imagecodecs, as `cjxl` / `djxl` do it):
  the coefficients as a JPEG-XL image with the JPEG reconstruction box.

The encoder runs each, decodes each result at once and keeps the smallest that gives back every
byte of the file; where none does (a progressive CMYK file, arithmetic coding, a damaged scan
libjpeg still decodes) or the file's own bytes are smaller (a tiny JPEG, whose headers are most of
it: zlib with libjpeg's tables as its dictionary, below), the stream keeps the file whole
(trainer.codec.keep, representation `file`). So a JPEG's stream is never larger than the file plus
the header. A file libjpeg cannot decode (truncated, damaged headers, 12-bit) is refused in one line
(`examine`). On 40 photos (benchmarks/results/jpeg): 21.4 % below the files; Lepton's defaults
18.0 %, JPEG-XL 16.5 %.

The stream: the envelope of trainer.codec.envelope at version 5, representation 4 (`jpeg`), byte
22 naming the coder (0 lepton, 1 jpegxl, 2 pixlm), the picture's width, height, channels and depth
(what `pixlm info` shows), the CRC32 of the file's own bytes, the `FMT ` entry of a kept file
(JSON: format, size, suffix), and one part: the coder's bytes. Decoding restores the file, checks
its size and CRC and writes it back under its own suffix.
"""

import io
import zlib
from dataclasses import dataclass

from trainer.codec import envelope
from trainer.codec.container import FormatError

LEPTON, JPEGXL, PIXLM = 0, 1, 2
CODERS = {LEPTON: "lepton", JPEGXL: "jpegxl", PIXLM: "pixlm"}
SAID = {LEPTON: "Lepton", JPEGXL: "JPEG-XL's JPEG transcoding", PIXLM: "pixlm's coefficient model"}  # in summaries
SAID_BY_NAME = {CODERS[c]: SAID[c] for c in CODERS}
LIBRARIES = {"lepton": "lepton-jpeg-python", "jpegxl": "libjxl through imagecodecs",
             "pixlm": "trainer.engine.jpeg_model"}  # what decodes each
LEPTON_PACKAGE = "lepton-jpeg-python"
# One partition: the smallest file (partitions only let a decoder run threads); no size limits of
# its own beyond the library's (a file it refuses is kept whole).
_LEPTON_CONFIG = {"max_partitions": 1}
SOI = b"\xff\xd8\xff"


# -- the dictionary of JPEG headers -------------------------------------------------------------
# A small JPEG's headers are a large part of it (a 64x64 gray file: 328 of 1,380 bytes), and most
# JPEGs written by software carry libjpeg's tables: the quantization tables of ITU-T T.81 Annex K
# scaled by the quality (jcparam.c), and Annex K's Huffman tables. Lepton and JPEG-XL code those
# headers with a general coder that has never seen them; a kept JPEG goes through zlib with them
# as its preset dictionary (trainer.codec.keep, coder 3), so they cost a few bytes. The dictionary
# is part of the format: built here, byte for byte the same in every release.
_LUMA_Q = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
           14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
           49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)  # Annex K.1, natural order
_CHROMA_Q = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
             47, 66, 99, 99, 99, 99, 99, 99) + (99,) * 32  # Annex K.2
_ZIGZAG = (0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,
           7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31,
           39, 46, 53, 60, 61, 54, 47, 55, 62, 63)
# libjpeg's JFIF APP0 (version 1.01, no density) and Annex K.3's four Huffman tables as its DHT markers
_APP0 = bytes.fromhex("ffe000104a46494600010100000100010000")
_DHT = bytes.fromhex(
    "ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400b5100002010303020403050504040000"
    "017d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a"
    "3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a9293949596"
    "9798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2"
    "f3f4f5f6f7f8f9faffc4001f0100030101010101010101010000000000000102030405060708090a0bffc400b511000201020404"
    "0304070504040001027700010203110405213106124151076171132232810814429"
    "1a1b1c109233352f0156272d10a162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a6364"
    "65666768696a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3"
    "c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa")


def _dqt(table_id: int, base: tuple, quality: int) -> bytes:
    """libjpeg's DQT marker of one table at a quality (jpeg_quality_scaling, baseline: at most 255)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    values = [min(max((base[i] * scale + 50) // 100, 1), 255) for i in _ZIGZAG]
    return b"\xff\xdb\x00\x43" + bytes([table_id]) + bytes(values)


def header_dictionary() -> bytes:
    """zlib's preset dictionary for kept JPEG files (14,250 bytes): libjpeg's two DQT markers at every
    quality 1..100, then its JFIF APP0 and Annex K's DHT markers (the most common, nearest the data)."""
    return b"".join(_dqt(0, _LUMA_Q, q) + _dqt(1, _CHROMA_Q, q) for q in range(1, 101)) + _APP0 + _DHT


class JpegCoderError(FormatError):
    """A stream's JPEG coder is not installed here, or its part does not restore the file."""


def is_jpeg(data: bytes) -> bool:
    """A JPEG file by its first bytes (SOI and the next marker's 0xFF), whatever its suffix."""
    return data[:3] == SOI


@dataclass(frozen=True)
class Shape:
    """What the stream's header says of a JPEG (and `pixlm info` shows): its size and components."""
    width: int
    height: int
    channels: int  # 1 gray, 3 YCbCr (RGB), 4 CMYK / YCCK
    depth: int = 8


def examine(data: bytes, name: str = "image") -> Shape:
    """The Shape of a JPEG file, its every scan decoded by Pillow (libjpeg, at 1/8 scale) to tell a
    valid file from a damaged one; ImageModeError (one line) for a file it cannot decode: truncated, corrupt, or a
    kind it does not read (12-bit). Nothing of the pixels is kept."""
    from PIL import Image

    from trainer.images.picture import ImageModeError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("JPEG", "MPO"):
                raise ImageModeError(f"{name}: not a readable JPEG (Pillow reads it as {image.format})")
            shape = Shape(image.width, image.height, len(image.getbands()))
            # every coefficient is still decoded, the inverse DCT only at 1/8 scale: fast, little memory
            image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
            return shape
    except ImageModeError:
        raise
    except Exception as err:  # noqa: BLE001 - Pillow's and libjpeg's refusals, in one line
        reason = "unknown format" if isinstance(err, Image.UnidentifiedImageError) else _first_line(err)
        raise ImageModeError(f"{name}: not a readable JPEG ({reason})") from None


def _lepton():
    try:
        import lepton_jpeg_python
    except ImportError:
        return None
    return lepton_jpeg_python


def _encode(coder: int, data: bytes) -> bytes:
    if coder == PIXLM:
        from trainer.codec import jpeg_coefficients

        return jpeg_coefficients.compress(data)
    if coder == LEPTON:
        lepton = _lepton()
        if lepton is None:
            raise RuntimeError(f"{LEPTON_PACKAGE} is not installed")
        return bytes(lepton.compress_bytes(data, _LEPTON_CONFIG))
    import imagecodecs

    return bytes(imagecodecs.jpegxl_encode_jpeg(data, numthreads=1))


def _decode(coder: int, part: bytes, size: int) -> bytes:
    """The JPEG file of a coder's part (`size`: the file's size; Lepton stops at it)."""
    if coder == PIXLM:
        from trainer.codec import jpeg_coefficients

        return jpeg_coefficients.decompress(part, size)
    if coder == LEPTON:
        lepton = _lepton()
        if lepton is None:
            raise JpegCoderError(f"this stream's JPEG was coded by Lepton: pip install {LEPTON_PACKAGE}")
        return bytes(lepton.decompress_bytes(part, {"max_jpeg_file_size": max(size, 1)}))
    import imagecodecs

    return bytes(imagecodecs.jpegxl_decode_jpeg(part, numthreads=1))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def recoded(data: bytes) -> tuple[list[tuple[int, bytes]], dict]:
    """([(coder, part)] of every coder that gives back `data` byte for byte, smallest first,
    {coder name: why it was not kept} of the others). Each part is decoded at once and compared."""
    good, failed = [], {}
    for coder in (PIXLM, LEPTON, JPEGXL):
        try:
            part = _encode(coder, data)
            back = _decode(coder, part, len(data))
        except Exception as err:  # noqa: BLE001 - any refusal leaves the file to another coder
            failed[CODERS[coder]] = _first_line(err)
            continue
        if back != data:
            failed[CODERS[coder]] = f"not restored exactly ({len(back):,} of {len(data):,} bytes back)"
            continue
        good.append((coder, part))
    return sorted(good, key=lambda c: len(c[1])), failed


def pack(bundle_id: bytes, data: bytes, picture, coder: int, part: bytes, original_suffix: str) -> bytes:
    """A version 5 stream of a JPEG file recoded by `coder` (`part`, already checked to restore it)."""
    import json

    from trainer.codec import keep

    fmt = keep.file_format(data)
    head = json.dumps({"format": fmt, "size": len(data), "suffix": keep.suffix_for(fmt, original_suffix)},
                      separators=(",", ":")).encode()
    return envelope.pack(envelope.Envelope(bundle_id, envelope.JPEG, coder, picture.width, picture.height,
                                           picture.channels, picture.depth, zlib.crc32(data),
                                           [(b"FMT ", head)], [part]))


def file_bytes(env: envelope.Envelope, size: int) -> bytes:
    """The JPEG file of a version 5 `jpeg` stream (`size`: its `FMT ` entry's), size and CRC
    checked; FormatError (one line) otherwise."""
    if env.low not in CODERS:
        raise FormatError(f"unknown JPEG coder {env.low} (a newer pixlm reads it)")
    try:
        data = _decode(env.low, env.parts[0], size)
    except JpegCoderError:
        raise
    except Exception as err:  # noqa: BLE001 - the library's own message, in one line
        raise FormatError(f"damaged payload: the JPEG does not decode ({_first_line(err)})") from None
    if len(data) != size or zlib.crc32(data) != env.sample_crc:
        raise FormatError("damaged payload: the restored JPEG fails its size or CRC check; the output was not written")
    return data

"""The file's own bytes (format version 5): never a stream much larger than the file it codes.

A file that is already compressed well, a JPEG above all, has pixels that cost far more to code
losslessly than the file itself (a quality-90 photo: 2.65x its JPEG). When every coded stream
of an input file is larger than that file, the encoder keeps the file's own bytes instead,
through a general coder where that helps (zlib or LZMA2, whichever is smaller, else stored), in
the envelope's layout as representation `file` (trainer.codec.envelope, version 5), and says so
in its summary line. `pixlm decode` writes back exactly those bytes, under the original's suffix;
no model runs. So no stream is larger than its input file plus the container's header.

The stream keeps what `pixlm info` shows: width, height, channels and bits per sample of the
picture; its one entry, `FMT `, is JSON naming the file's format (`jpeg`, `png`, ... as Pillow
names it), its size in bytes and its suffix (the original's where it names the format, else the
format's usual one); the CRC field covers the file's own bytes.

A JPEG file is first recoded at the level of its coefficients (trainer.codec.jpeg, representation
`jpeg` of the same version): that stream has the same `FMT ` entry and CRC, so `facts`,
`file_bytes` and `is_kept` here read both.
"""

import io
import json
import lzma
import re
import zlib

from trainer.codec import envelope
from trainer.codec.container import FormatError

# LZMA2 without a container around it (the envelope has the length and CRC): 13+ bytes fewer than .xz
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6}]
# a file format -> the suffixes it is written under (the first: where the original's is not one)
SUFFIXES = {"png": (".png",), "jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"), "mpo": (".jpg", ".jpeg", ".mpo"),
            "tiff": (".tif", ".tiff"), "pnm": (".ppm", ".pgm", ".pnm"), "webp": (".webp",), "bmp": (".bmp", ".dib"),
            "gif": (".gif",)}
CODERS_SAID = {envelope.STORED: "", envelope.ZLIB: " (zlib)", envelope.LZMA: " (LZMA)",
               envelope.ZLIB_JPEG: " (zlib with the JPEG tables)"}  # in summary lines
_SUFFIX = re.compile(r"\.[A-Za-z0-9_-]{1,16}")


def file_format(data: bytes) -> str:
    """The format of an image file's bytes, as pixlm reads it (png, tiff, pnm, else Pillow's name)."""
    from PIL import Image

    from trainer.images import png, pnm, tiff

    if data.startswith(png.SIGNATURE):
        return "png"
    if tiff.is_tiff(data):
        return "tiff"
    if pnm.is_pnm(data):
        return "pnm"
    try:
        with Image.open(io.BytesIO(data)) as image:
            return (image.format or "unknown").lower()
    except Exception:  # noqa: BLE001 - the picture was read: any failure here only loses the name
        return "unknown"


def suffix_for(fmt: str, original: str) -> str:
    """The suffix a kept file is written back under: the original's where it names the format."""
    known = list(SUFFIXES.get(fmt, ()))
    if not known:
        from PIL import Image

        known = sorted(ext for ext, name in Image.registered_extensions().items() if name.lower() == fmt)
    if original and _SUFFIX.fullmatch(original) and (original.lower() in known or not known):
        return original
    return known[0] if known else ".bin"


def _jpeg_zlib(data: bytes) -> bytes:
    """zlib (level 9) with libjpeg's tables as its preset dictionary (trainer.codec.jpeg)."""
    from trainer.codec.jpeg import header_dictionary

    deflate = zlib.compressobj(9, zdict=header_dictionary())
    return deflate.compress(data) + deflate.flush()


def _smallest(data: bytes, lzma_too: bool = True) -> tuple[int, bytes]:
    """(coder, part): the file's bytes as they are, or through zlib or LZMA2 where that is smaller
    (a JPEG file: also zlib with libjpeg's tables as its dictionary; LZMA2 only where `lzma_too`)."""
    from trainer.codec.jpeg import is_jpeg

    best = (envelope.STORED, data)
    coders = [(envelope.ZLIB, lambda d: zlib.compress(d, 9))]
    if lzma_too:
        coders.append((envelope.LZMA, lambda d: lzma.compress(d, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)))
    if is_jpeg(data):
        coders.append((envelope.ZLIB_JPEG, _jpeg_zlib))
    for coder, pack in coders:
        part = pack(data)
        if len(part) < len(best[1]):
            best = (coder, part)
    return best


def pack(bundle_id: bytes, data: bytes, picture, original_suffix: str, lzma_too: bool = True) -> bytes:
    """A version 5 stream holding an image file's own bytes (`picture`: what was read from them).
    lzma_too=False: zlib only (a JPEG that a JPEG coder restores: LZMA2 saves a few bytes at 10x
    zlib's time, and the recoded stream is the smaller but on tiny files)."""
    coder, part = _smallest(data, lzma_too)
    fmt = file_format(data)
    head = json.dumps({"format": fmt, "size": len(data), "suffix": suffix_for(fmt, original_suffix)},
                      separators=(",", ":")).encode()
    return envelope.pack(envelope.Envelope(bundle_id, envelope.FILE, coder, picture.width, picture.height,
                                           picture.channels, picture.depth, zlib.crc32(data),
                                           [(b"FMT ", head)], [part]))


def facts(env: envelope.Envelope) -> dict:
    """What the `FMT ` entry of a version 5 stream says: format, size, the suffixes the file may be
    written under (its own first); FormatError otherwise."""
    try:
        tag, body = env.entries[0]
        head = json.loads(body)
        fmt, size, suffix = str(head["format"]), int(head["size"]), head["suffix"]
    except (IndexError, ValueError, KeyError, TypeError):
        raise FormatError("damaged format entry of a kept file") from None
    if tag != b"FMT " or len(env.entries) != 1 or size < 0 or not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix):
        raise FormatError("damaged format entry of a kept file")
    suffixes = [suffix] + [s for s in SUFFIXES.get(fmt, ()) if s != suffix.lower()]
    if env.representation == envelope.JPEG:
        from trainer.codec import jpeg

        return {"format": fmt, "suffixes": suffixes, "size": size, "representation": "jpeg",
                "coder": jpeg.CODERS[env.low]}
    return {"format": fmt, "suffixes": suffixes, "size": size, "representation": "file", "coder": envelope.CODERS[env.low]}


def file_bytes(env: envelope.Envelope) -> bytes:
    """The file's own bytes of a version 5 stream, their size and CRC checked; FormatError otherwise.
    Never more than the declared size is inflated (a forged part cannot take the memory). A `jpeg`
    stream's file is restored by its JPEG coder (trainer.codec.jpeg)."""
    size = facts(env)["size"]
    if env.representation == envelope.JPEG:
        from trainer.codec import jpeg

        return jpeg.file_bytes(env, size)
    part = env.parts[0]
    try:
        if env.low == envelope.STORED:
            data = part
        elif env.low in (envelope.ZLIB, envelope.ZLIB_JPEG):
            if env.low == envelope.ZLIB_JPEG:
                from trainer.codec.jpeg import header_dictionary

                inflate = zlib.decompressobj(zdict=header_dictionary())
            else:
                inflate = zlib.decompressobj()
            data = inflate.decompress(part, size + 1)
            if not inflate.eof or inflate.unused_data:
                raise zlib.error("not one whole zlib stream")
        else:
            inflate = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
            data = inflate.decompress(part, size + 1)
            if not inflate.eof or inflate.unused_data:
                raise lzma.LZMAError("not one whole LZMA2 stream")
    except (zlib.error, lzma.LZMAError) as err:
        raise FormatError(f"damaged payload: the kept file does not inflate ({err})") from None
    if len(data) != size or zlib.crc32(data) != env.sample_crc:
        raise FormatError("damaged payload: the kept file fails its size or CRC check; the output was not written")
    return bytes(data)


def is_kept(data: bytes) -> bool:
    """A version 5 stream: an input file's own bytes (kept whole, or a JPEG recoded)."""
    return envelope.is_envelope(data) and data[4] == envelope.FILE_VERSION

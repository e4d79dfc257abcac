"""Format version 4: a file's samples at any depth, with its metadata, around format 2/3 streams.

A plain 8-bit PNG-like image is still written as a version 2 (or 3) stream. Everything else, a
16-bit image, a palette or 1/2/4-bit image, a file with transparency keys, ICC, EXIF, XMP or text,
a TIFF or PNM, goes into this envelope (spec also in docs/FORMAT.md):

    offset  size  field
    0       4     magic b"PXLM"
    4       1     format version 4 (5: representation 3, the same layout: older readers refuse it)
    5       16    bundle id (as in version 2)
    21      1     representation: 0 planes (the samples, up to 8 bits, as one version 2/3 stream),
                  1 split16 (16-bit samples: high bytes as a version 2/3 stream, low bytes apart),
                  2 jxl (JPEG-XL lossless of the samples at any depth),
                  3 file (version 5: the input file's own bytes, trainer.codec.keep),
                  4 jpeg (version 5: a JPEG file recoded losslessly, trainer.codec.jpeg),
                  5 bands (version 6: a large picture as bands of rows, each part a stream of
                  its own, trainer.codec.bands)
    22      1     low bytes of split16: 0 a part of their own (LZMA), 1 equal to the high bytes
                  (v = 257 h), 2 zero (v = 256 h); file: the part's general coder (0 stored,
                  1 zlib, 2 LZMA2 raw, 3 zlib with libjpeg's tables as its dictionary); jpeg:
                  its coder (0 Lepton, 1 JPEG-XL's JPEG transcoding, 2 pixlm's coefficient model); 0 for the others
    23      4+4+1+1   width, height, channels, bits per sample (1..16)
    .       4     CRC32 of the samples at full depth (uint8, or uint16 little-endian; row-major);
                  file, jpeg: CRC32 of the file's own bytes
    .       4+n   metadata section: its length, then (section version 1, entry count u16, entries
                  of 4-byte tag + u32 length + bytes, CRC32 of the section before it)
    .       1     part count, then per part: u64 length, u32 CRC32
    .       4     CRC32 of every header byte before this field
    .       ...   the parts, one after another (a version 2/3 stream, or a JPEG-XL file)

Every length and CRC is checked before any model runs; the sample CRC after decoding.
"""

import io
import struct
import zlib
from dataclasses import dataclass, replace

from trainer.codec.container import MAGIC, MAX_SIDE, FormatError

VERSION = 4
FILE_VERSION = 5  # the same layout, representations FILE and JPEG only: a pixlm that reads version 4 only refuses it
BANDS_VERSION = 6  # representation BANDS only: a pixlm that reads versions 4 and 5 refuses it
VERSIONS = (VERSION, FILE_VERSION, BANDS_VERSION)
PLANES, SPLIT16, JXL, FILE, JPEG, BANDS = 0, 1, 2, 3, 4, 5
NAMES = {PLANES: "planes", SPLIT16: "split16", JXL: "jxl", FILE: "file", JPEG: "jpeg", BANDS: "bands"}
OWN_FILE = (FILE, JPEG)  # version 5: the input file itself comes back, byte for byte
LOW_PART, LOW_IS_HIGH, LOW_ZERO = 0, 1, 2
# FILE: the general coder of its part (in the `low` field); 3 only for JPEG files: zlib with libjpeg's
# tables as its preset dictionary (trainer.codec.jpeg.header_dictionary)
STORED, ZLIB, LZMA, ZLIB_JPEG = 0, 1, 2, 3
# JPEG: the `low` field names its coder (trainer.codec.jpeg: 0 Lepton, 1 JPEG-XL's JPEG transcoding, 2 pixlm)
CODERS = {STORED: "stored", ZLIB: "zlib", LZMA: "lzma", ZLIB_JPEG: "zlib+jpeg-tables"}
SECTION_VERSION = 1
_FIXED = struct.Struct("<BBIIBBI")  # representation, low, width, height, channels, depth, sample crc


@dataclass(frozen=True)
class Envelope:
    bundle_id: bytes
    representation: int
    low: int
    width: int
    height: int
    channels: int
    depth: int
    sample_crc: int
    entries: list  # (tag, bytes): the picture's format description and metadata
    parts: list  # bytes


def _section(entries) -> bytes:
    body = struct.pack("<BH", SECTION_VERSION, len(entries))
    for tag, data in entries:
        if len(tag) != 4:
            raise ValueError(f"entry tag {tag!r} is not 4 bytes")
        body += tag + struct.pack("<I", len(data)) + data
    return body + struct.pack("<I", zlib.crc32(body))


def _read_section(data: bytes) -> list:
    if len(data) < 7 or zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise FormatError("corrupted metadata section (CRC mismatch)")
    version, count = struct.unpack_from("<BH", data)
    if version != SECTION_VERSION:
        raise FormatError(f"metadata section version {version} is not supported (a newer pixlm reads it)")
    pos, entries = 3, []
    for _ in range(count):
        if pos + 8 > len(data) - 4:
            raise FormatError("truncated metadata section")
        tag, (length,) = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)
        if pos + 8 + length > len(data) - 4:
            raise FormatError("truncated metadata section")
        entries.append((tag, data[pos + 8:pos + 8 + length]))
        pos += 8 + length
    if pos != len(data) - 4:
        raise FormatError("unexpected bytes in the metadata section")
    return entries


def version_of(representation: int) -> int:
    return FILE_VERSION if representation in OWN_FILE else BANDS_VERSION if representation == BANDS else VERSION


def pack_head(envelope: Envelope, sizes: list[tuple[int, int]]) -> bytes:
    """The header of an envelope whose parts have these (length, CRC32): everything before the
    parts (its length does not depend on their values: a writer of bands fills them in last)."""
    section = _section(envelope.entries)
    head = (MAGIC + bytes([version_of(envelope.representation)]) + envelope.bundle_id
            + _FIXED.pack(envelope.representation, envelope.low, envelope.width, envelope.height, envelope.channels,
                          envelope.depth, envelope.sample_crc)
            + struct.pack("<I", len(section)) + section + bytes([len(sizes)])
            + b"".join(struct.pack("<QI", size, crc) for size, crc in sizes))
    return head + struct.pack("<I", zlib.crc32(head))


def pack(envelope: Envelope) -> bytes:
    return pack_head(envelope, [(len(p), zlib.crc32(p)) for p in envelope.parts]) + b"".join(envelope.parts)


def read_head(f) -> tuple[Envelope, list[tuple[int, int]]]:
    """The header of a version 4-6 stream from a file object, checked, the parts not read: (the
    envelope without parts, (length, CRC32) of each part). FormatError (one line) otherwise."""
    read = []

    def take(size: int) -> bytes:
        data = f.read(size)
        if len(data) < size:
            raise FormatError("truncated header")
        read.append(data)
        return data

    version = take(21)[4]
    fields = _FIXED.unpack(take(_FIXED.size))
    section = take(struct.unpack("<I", take(4))[0])
    sizes = [struct.unpack("<QI", take(12)) for _ in range(take(1)[0])]
    body = b"".join(read)
    if zlib.crc32(body) != struct.unpack("<I", take(4))[0]:
        raise FormatError("corrupted header (CRC mismatch)")
    representation, low, width, height, channels, depth, sample_crc = fields
    parts_needed = {PLANES: 1, SPLIT16: 2 if low == LOW_PART else 1, JXL: 1, FILE: 1, JPEG: 1,
                    BANDS: len(sizes) or -1}.get(representation)
    lows = {SPLIT16: LOW_ZERO, FILE: ZLIB_JPEG, JPEG: 2}.get(representation, 0)  # the largest `low` each allows
    if (parts_needed != len(sizes) or low > lows or version != version_of(representation)
            or not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or channels not in (1, 2, 3, 4)
            or not 1 <= depth <= 16 or (representation == PLANES and depth > 8)
            or (representation == SPLIT16 and depth <= 8)):
        raise FormatError("invalid header fields")
    return Envelope(body[5:21], representation, low, width, height, channels, depth, sample_crc,
                    _read_section(section), []), sizes


def read_part(f, index: int, size: int, crc: int) -> bytes:
    """Part `index` (from 0) of a stream whose header `read_head` read, its length and CRC checked."""
    part = f.read(size)
    if len(part) < size:
        raise FormatError(f"truncated payload (part {index + 1}: {len(part)} of {size} bytes)")
    if zlib.crc32(part) != crc:
        raise FormatError(f"corrupted payload (part {index + 1}: CRC mismatch)")
    return part


def unpack(data: bytes) -> Envelope:
    """The envelope of a version 4-6 file, every length and CRC checked; FormatError (one line) otherwise."""
    f = io.BytesIO(data)
    head, sizes = read_head(f)
    parts = [read_part(f, index, size, crc) for index, (size, crc) in enumerate(sizes)]
    if f.tell() != len(data):
        raise FormatError(f"{len(data) - f.tell()} unexpected bytes after the payload")
    return replace(head, parts=parts)


def is_bands(data: bytes) -> bool:
    """A version 6 stream: a large picture in bands."""
    return len(data) > 4 and data[:4] == MAGIC and data[4] == BANDS_VERSION


def is_envelope(data: bytes) -> bool:
    """A version 4, 5 or 6 stream (the envelope's layout)."""
    return len(data) > 4 and data[:4] == MAGIC and data[4] in VERSIONS

"""A suite of odd image files written by independent encoders (pypng, libpng through imagecodecs,
tifffile), never by pixlm's own writer: every PNG colour type x bit depth, interlaced or not, with
transparency keys, ICC, EXIF, text; odd sizes; 16-bit TIFFs and PNMs; and corrupt files.

`reference_samples(path)` reads a file as an independent decoder does, at full depth: what a
decoded file must equal."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np

DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _smooth(rng, height, width, channels, depth):
    """Photo-like samples at a depth: a gradient plus noise (the low bits random at 16 bits)."""
    top = (1 << depth) - 1
    y, x = np.mgrid[0:height, 0:width]
    base = (x * 3 + y * 5)[..., None] * (top / (3 * width + 5 * height)) + np.arange(channels) * top / 7
    noise = rng.integers(0, max(2, top // 40), (height, width, channels))
    return (np.clip(base + noise, 0, top)).astype(np.uint16 if depth > 8 else np.uint8)


def _insert_chunks(data: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """Add chunks right after IHDR (where iCCP and friends belong), CRCs computed."""
    ihdr_end = 8 + 8 + 13 + 4
    blob = b"".join(struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b)) for k, b in chunks)
    return data[:ihdr_end] + blob + data[ihdr_end:]


def write_png(path: Path, samples: np.ndarray, colour: int, depth: int, interlace: bool = False,
              palette=None, transparent=None, chunks=()) -> None:
    import png as pypng

    height, width, channels = samples.shape
    writer = pypng.Writer(width, height, greyscale=colour in (0, 4), alpha=colour in (4, 6), bitdepth=depth,
                          palette=palette, transparent=transparent, interlace=interlace)
    buffer = io.BytesIO()
    writer.write(buffer, samples.reshape(height, width * channels).tolist())
    Path(path).write_bytes(_insert_chunks(buffer.getvalue(), list(chunks)))


def build_suite(folder: Path, seed: int = 0) -> dict[str, str]:
    """Write the suite into `folder`; {file name: "ok" (must round-trip) or "corrupt" (must be refused)}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    icc = b"ICC profile\x00\x00" + zlib.compress(bytes(range(256)) * 2)
    exif = b"MM\x00*\x00\x00\x00\x08\x00\x00"
    text = b"Comment\x00made by the odd-image suite"
    expect = {}
    for colour, depths in DEPTHS.items():
        for depth in depths:
            for interlace in (False, True):
                height, width = (13, 17) if interlace else (16, 11)
                name = f"c{colour}-d{depth:02d}{'-i' if interlace else ''}.png"
                palette = None
                if colour == 3:
                    size = 1 << depth
                    palette = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(size)]
                    samples = rng.integers(0, size, (height, width, 1)).astype(np.uint8)
                else:
                    samples = _smooth(rng, height, width, CHANNELS[colour], depth)
                extra = [(b"iCCP", icc), (b"tEXt", text)] if depth in (8, 16) else [(b"eXIf", exif)]
                write_png(folder / name, samples, colour, depth, interlace, palette, chunks=extra)
                expect[name] = "ok"
    # colour keys (tRNS) on gray and RGB, 8 and 16 bits
    for colour, depth in ((0, 8), (0, 16), (2, 8), (2, 16)):
        samples = _smooth(rng, 9, 7, CHANNELS[colour], depth)
        key = tuple(int(v) for v in samples[0, 0]) if colour == 2 else int(samples[0, 0, 0])
        name = f"trns-c{colour}-d{depth}.png"
        write_png(folder / name, samples, colour, depth, transparent=key)
        expect[name] = "ok"
    # palette with transparency entries
    palette = [(10, 20, 30, 0), (200, 100, 50, 128), (1, 2, 3, 255)]
    write_png(folder / "palette-alpha.png", rng.integers(0, 3, (5, 6, 1)).astype(np.uint8), 3, 8, palette=palette)
    expect["palette-alpha.png"] = "ok"
    # odd sizes: one pixel, one row, one column
    for h, w in ((1, 1), (1, 37), (29, 1)):
        name = f"size-{h}x{w}.png"
        write_png(folder / name, _smooth(rng, h, w, 3, 16), 2, 16)
        expect[name] = "ok"
    # 16-bit TIFFs (tifffile) and 8/16-bit PNMs
    import tifffile

    for channels, photometric in ((1, "minisblack"), (3, "rgb"), (4, "rgb")):
        samples = _smooth(rng, 12, 10, channels, 16)
        name = f"tiff16-{channels}.tif"
        tifffile.imwrite(folder / name, samples if channels > 1 else samples[..., 0], photometric=photometric,
                         extrasamples=[2] if channels == 4 else None, description="a test TIFF")
        expect[name] = "ok"
    for channels, maxval in ((1, 1023), (3, 65535), (3, 255)):
        samples = _smooth(rng, 6, 8, channels, maxval.bit_length())
        head = f"{'P5' if channels == 1 else 'P6'}\n8 6\n{maxval}\n".encode()
        name = f"pnm-{channels}-{maxval}.{'pgm' if channels == 1 else 'ppm'}"
        (folder / name).write_bytes(head + samples.astype(">u2" if maxval > 255 else np.uint8).tobytes())
        expect[name] = "ok"
    # corrupt files: refused with one line
    good = (folder / "c2-d08.png").read_bytes()
    (folder / "corrupt-crc.png").write_bytes(good[:40] + bytes([good[40] ^ 1]) + good[41:])
    (folder / "corrupt-truncated.png").write_bytes(good[:len(good) // 2])
    (folder / "corrupt-empty.png").write_bytes(b"")
    (folder / "corrupt-noise.tif").write_bytes(b"II*\x00" + bytes(rng.integers(0, 256, 64, dtype=np.uint8)))
    for name in ("corrupt-crc.png", "corrupt-truncated.png", "corrupt-empty.png", "corrupt-noise.tif"):
        expect[name] = "corrupt"
    return expect


def reference_samples(path: Path) -> np.ndarray:
    """A file's samples as independent decoders read them at full depth: pypng for PNG (palette
    indices as stored, 1..16 bits), tifffile for TIFF, numpy for PNM."""
    path = Path(path)
    data = path.read_bytes()
    if data.startswith(b"\x89PNG"):
        import png as pypng

        width, height, rows, info = pypng.Reader(bytes=data).read()
        planes = info["planes"]
        return np.array([list(r) for r in rows], dtype=np.uint16).reshape(height, width, planes)
    if data[:2] in (b"II", b"MM"):
        import tifffile

        array = tifffile.imread(path)
        return array.reshape(array.shape[0], array.shape[1], -1)
    magic, width, height, maxval = data.split(maxsplit=4)[:4]
    count = int(width) * int(height) * (1 if magic == b"P5" else 3)
    body = data[len(data) - count * (2 if int(maxval) > 255 else 1):]
    dtype = ">u2" if int(maxval) > 255 else np.uint8
    return np.frombuffer(body, dtype=dtype).reshape(int(height), int(width), -1)


def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    """Every ancillary chunk of a PNG, in order (pypng's chunk reader)."""
    import png as pypng

    return [(kind, body) for kind, body in pypng.Reader(bytes=Path(path).read_bytes()).chunks()
            if kind not in (b"IHDR", b"IDAT", b"IEND")]

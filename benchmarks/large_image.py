"""Peak memory and time of `pixlm encode` / `decode` on one large image (issue 34, item 5).

The image is written a band at a time (a smooth gradient, plus noise in the low byte at 16 bits,
as a scan's), so making it needs no more memory than coding it; each command runs in a child
process whose peak RSS is read from the kernel; the decoded file is compared with the input a
band at a time by the streaming PNG reader. Writes JSON.

    python benchmarks/large_image.py --width 20000 --height 15000 --depth 16 \
        --out benchmarks/results/large_image.json

With `--jpeg QUALITY` the input is a JPEG file instead (a photo resized to the size by Pillow,
bicubic, saved at that quality), coded in pixlm's JPEG mode and compared byte for byte:

    python benchmarks/large_image.py --jpeg 92 --width 6000 --height 4000 \
        --out benchmarks/results/large_jpeg.json
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from trainer.images import png, png_rows

REPO = Path(__file__).resolve().parent.parent
ROWS = 100  # rows written or compared at a time
# the child's peak RSS (KiB): VmHWM, its own (getrusage's maxrss also counts the parent it was forked from)
CHILD = """
import sys
from trainer.cli import main
code = main(sys.argv[1:])
print(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1])
sys.exit(code)
"""


def make(path: Path, width: int, height: int, depth: int, channels: int) -> None:
    top = (1 << depth) - 1
    rng = np.random.default_rng(0)
    ihdr = png.Ihdr(width, height, depth, 0 if channels == 1 else 2, 0)
    with open(path, "wb") as f:
        writer = png_rows.RowWriter(f, ihdr, [(b"IHDR", ihdr.pack()), (png.IDAT, b"")])
        x = np.arange(width)[None, :, None] * top // (2 * width)
        for y in range(0, height, ROWS):
            rows = np.arange(y, min(height, y + ROWS))[:, None, None] * top // (2 * height)
            band = x + rows + np.arange(channels)[None, None] * (top // 9)
            band = band + rng.integers(0, 256 if depth == 16 else 3, band.shape)
            writer.write(np.clip(band, 0, top).astype(np.uint16 if depth == 16 else np.uint8))
        writer.close()


def run(*args) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"{' '.join(map(str, args))} failed: {done.stderr.strip()}")
    lines = done.stdout.strip().splitlines()
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mib": round(int(lines[-1]) / 1024, 1),
            "summary": lines[0]}


def same(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        ia, ib = (png.Ihdr.parse(png.file_chunks(f)[0][1]) for f in (fa, fb))
        if ia != ib:
            return False
        fa.seek(0)
        fb.seek(0)
        ra, rb = png_rows.RowReader(fa, ia), png_rows.RowReader(fb, ib)
        return all(np.array_equal(ra.read(min(ROWS, ia.height - y)), rb.read(min(ROWS, ia.height - y)))
                   for y in range(0, ia.height, ROWS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=20000)
    parser.add_argument("--height", type=int, default=15000)
    parser.add_argument("--depth", type=int, choices=(8, 16), default=16)
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--bundle", default="checkpoints/pixlm-online-fast")
    parser.add_argument("--jpeg", type=int, default=None, metavar="QUALITY", help="code a JPEG file of a photo")
    parser.add_argument("--photo", type=Path, default=REPO.parent / "shared" / "data" / "photos" / "041.png")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        suffix = ".jpg" if args.jpeg else ".png"
        source, stream, back = Path(tmp) / f"in{suffix}", Path(tmp) / "in.pxl", Path(tmp) / f"out{suffix}"
        if args.jpeg:
            from PIL import Image

            photo = Image.open(args.photo).convert("RGB").resize((args.width, args.height), Image.BICUBIC)
            photo.save(source, quality=args.jpeg)
        else:
            make(source, args.width, args.height, args.depth, args.channels)
        limit = ["--max-pixels", str(args.width * args.height)]
        encode = run("encode", source, stream, "--bundle", args.bundle, *limit)
        decode = run("decode", stream, back)
        result = {"command": " ".join(sys.argv), "machine": platform.processor() or platform.machine(),
                  "image": (f"{args.width}x{args.height} JPEG of {args.photo.name}, quality {args.jpeg}" if args.jpeg
                            else f"{args.width}x{args.height}x{args.channels}, {args.depth}-bit"),
                  "input_bytes": source.stat().st_size, "stream_bytes": stream.stat().st_size,
                  "encode": encode, "decode": decode,
                  "identical": (source.read_bytes() == back.read_bytes()) if args.jpeg else same(source, back)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Issue 10 on a real second machine: decode streams encoded elsewhere and check every pixel.

`benchmarks/studies/portability.py` plays "another machine" on this one (torch's scalar kernels, other
thread counts). This script is the real thing: run it where the streams were NOT made (another CPU
kind, another torch build), with the original images beside it. Each stream is decoded by the
`pixlm` CLI in a fresh process, several at once, at each thread count asked; a decode counts only if
the pixels come back exactly. Streams whose numeric mode cannot travel (float bundles) are expected
to be refused or caught by the pixel CRC: the JSON records the one-line error.

    # on the encoding machine
    pixlm encode IMAGES/ STREAMS/ --no-fallback
    # on the other machine
    python benchmarks/studies/cross_machine.py --streams STREAMS/ tests/expected --images IMAGES/ tests/expected \
        --threads 1 4 --jobs 8 --out cross_machine.json
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    import torch

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "python": platform.python_version()}


def find_original(stream: Path, image_dirs: list[Path]) -> Path | None:
    """The image a stream was made from: same stem up to its first dot (astronaut-64x40.context-v4.pxl
    -> astronaut-64x40.png)."""
    stem = stream.name.split(".")[0]
    for folder in image_dirs:
        for suffix in (".png", ".ppm", ".bmp", ".tif", ".tiff"):
            if (folder / (stem + suffix)).is_file():
                return folder / (stem + suffix)
    return None


def decode_one(stream: Path, original: Path, threads: int, tmp: Path) -> dict:
    out = tmp / f"{stream.name}-t{threads}.png"
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "trainer.cli", "decode", str(stream), str(out), "--threads",
                          str(threads), "--quiet", "--force"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - start
    exact = run.returncode == 0 and out.is_file() and np.array_equal(
        np.asarray(Image.open(out).convert("RGB")), np.asarray(Image.open(original).convert("RGB")))
    lines = run.stderr.strip().splitlines()
    return {"stream": stream.name, "bytes": stream.stat().st_size, "threads": threads, "exact": bool(exact),
            "seconds": round(seconds, 1), "error": lines[-1] if run.returncode and lines else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", nargs="+", type=Path, required=True, help=".pxl files or folders of them")
    parser.add_argument("--images", nargs="+", type=Path, required=True, help="folders with the original images")
    parser.add_argument("--threads", nargs="+", type=int, default=[1])
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    streams = sorted(p for s in args.streams for p in ([s] if s.is_file() else s.glob("*.pxl")))
    if not streams:
        sys.exit("no .pxl streams found in " + " ".join(map(str, args.streams)))
    pairs = [(s, find_original(s, args.images)) for s in streams]
    missing = [s.name for s, o in pairs if o is None]
    if missing:
        sys.exit(f"no original image for {', '.join(missing)} in " + " ".join(map(str, args.images)))
    report = {"machine": machine(), "rows": []}
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        jobs = [pool.submit(decode_one, s, o, t, Path(tmp)) for t in args.threads for s, o in pairs]
        for job in jobs:
            report["rows"].append(job.result())
            print(json.dumps(report["rows"][-1]), flush=True)
            args.out.write_text(json.dumps(report, indent=1))
    exact = sum(r["exact"] for r in report["rows"])
    print(f"{exact}/{len(report['rows'])} decodes exact on {report['machine']['cpu']}, torch {report['machine']['torch']}")


if __name__ == "__main__":
    main()

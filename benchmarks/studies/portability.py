"""Issue 10: which streams decode on "another machine". This machine can play one: torch run on its
scalar kernels (ATEN_CPU_CAPABILITY=default, as on a CPU without AVX2) computes other floats than on
its AVX2 kernels, and the thread count changes how matmuls split. Each bundle encodes each image
once (AVX2, its own thread setting), then every decoder setting decodes the stream in a fresh
process; a decode counts only if the pixels come back exactly.

    python benchmarks/studies/portability.py --bundles checkpoints/pixlm-context-v3 checkpoints/pixlm-context-v4 \
        --images tests/expected/astronaut-64x40.png /tmp/crop.png --out benchmarks/results/portability.json
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = [("AVX2", 1), ("AVX2", 2), ("default", 1), ("default", 2)]  # (torch CPU kernels, threads)


def cli(args: list[str], capability: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    if capability and capability != "AVX2":
        env["ATEN_CPU_CAPABILITY"] = capability
    return subprocess.run([sys.executable, "-m", "trainer.cli", *args, "--quiet"], env=env, cwd=ROOT,
                          capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", nargs="+", type=Path, required=True)
    parser.add_argument("--images", nargs="+", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bundle in args.bundles:
            for image in args.images:
                stream = Path(tmp) / f"{bundle.name}-{image.stem}.pxl"
                enc = cli(["encode", str(image), str(stream), "--bundle", str(bundle), "--no-fallback", "--force"], None)
                if enc.returncode:
                    sys.exit(f"encode failed: {enc.stderr.strip()}")
                for capability, threads in SETTINGS:
                    back = Path(tmp) / "back.png"
                    back.unlink(missing_ok=True)
                    start = time.perf_counter()
                    dec = cli(["decode", str(stream), str(back), "--bundle", str(bundle), "--threads", str(threads)],
                              capability)
                    exact = dec.returncode == 0 and np.array_equal(np.asarray(Image.open(back)),
                                                                    np.asarray(Image.open(image).convert("RGB")))
                    row = {"bundle": bundle.name, "image": image.name, "kernels": capability, "threads": threads,
                           "exact": exact, "seconds": round(time.perf_counter() - start, 1),
                           "error": dec.stderr.strip().splitlines()[-1] if dec.returncode else None}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    out = {"machine": "this 2-core AVX2 CPU; 'default' = torch's scalar kernels (ATEN_CPU_CAPABILITY=default)",
           "encoded_with": "AVX2 kernels, the bundle's own thread setting", "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        lines = ["| bundle | image | " + " | ".join(f"{k} {t} thr" for k, t in SETTINGS) + " |",
                 "| --- | --- |" + " --- |" * len(SETTINGS)]
        for bundle in args.bundles:
            for image in args.images:
                cells = ["exact" if r["exact"] else "refused" for r in rows
                         if r["bundle"] == bundle.name and r["image"] == image.name]
                lines.append(f"| {bundle.name} | {image.name} | " + " | ".join(cells) + " |")
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""Where the encoder finds a lattice (trainer/engine/lattice.py), and what looking costs: per image,
whether `lattice.fit` finds one (exact on every pixel) and its seconds, one thread of this machine.
A measurement of the finished encoder, never a choice: nothing here feeds a setting.

    python -m benchmarks.studies.lattice_search --set heldout ../shared/data/photos/{005,012,023,036}.png \
        --set video .cache/video --set kodak ../shared/data/kodak --crop-heldout 512x384 \
        --out benchmarks/results/lattice_search.json
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from trainer.engine import lattice
from trainer.images.files import center_crop, image_files, load_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", nargs="+", action="append", required=True, metavar=("NAME", "PATH"),
                        help="a set's name, then its images or folders")
    parser.add_argument("--crop-heldout", default=None, help="WxH center crop of the set named heldout")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    identity = lattice.Lattice(np.eye(3, dtype=np.int64) << lattice.SHIFT, np.full(3, 1 << (lattice.SHIFT - 1), np.int64))
    lattice.to_planes(np.zeros((2, 2, 3), np.uint8), identity)  # compiles outside the timings
    lattice.fit(np.zeros((64, 64, 3), np.uint8))  # and imports scipy
    out = {}
    for name, *paths in args.set:
        files = [f for p in map(Path, paths) for f in (image_files(p) if p.is_dir() else [p])]
        crop = tuple(map(int, args.crop_heldout.split("x"))) if name == "heldout" and args.crop_heldout else None
        rows = {}
        for path in files:
            image = np.ascontiguousarray(center_crop(load_image(path), crop)[..., :3])
            start = time.perf_counter()
            found = lattice.fit(image) is not None
            rows[path.name] = {"found": found, "seconds": round(time.perf_counter() - start, 2)}
        seconds = [r["seconds"] for r in rows.values()]
        out[name] = {"images": len(rows), "found": sum(r["found"] for r in rows.values()),
                     "seconds_min": min(seconds), "seconds_median": float(np.median(seconds)),
                     "seconds_max": max(seconds), "per_image": rows}
        print(name, {k: v for k, v in out[name].items() if k != "per_image"}, flush=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

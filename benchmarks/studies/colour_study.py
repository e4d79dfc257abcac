"""Which images a JPEG decoder made: per set, the share of pixels on libjpeg's integer YCbCr-to-RGB
lattice (trainer.engine.colour), the images whose every pixel maps back (those the engine codes as
Y, Cb, Cr planes), and for those what `max` spends per channel in each space (bits per pixel).

    python benchmarks/studies/colour_study.py --set camera=../shared/data/camera --set \
        photos=../shared/data/photos --limit 6 --out benchmarks/results/colour_study.json
"""

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from trainer.engine import coder, colour
from trainer.engine.settings import PRESETS
from trainer.engine.tables import make_tables
from trainer.images.files import image_files, load_image


def channel_bits(image: np.ndarray, tables: dict) -> list[float]:
    """Bits per pixel of each channel, `max` in the given order, one stripe."""
    lengths = np.zeros(image.shape, np.float32)
    settings = replace(PRESETS["max"], channel_order=0, colour=0, stripe_rows=0)
    coder.encode(image, settings, tables, threads=1, lengths=lengths)
    return lengths.mean(axis=(0, 1)).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", action="append", required=True, metavar="NAME=FOLDER")
    parser.add_argument("--limit", type=int, default=12, help="first N images of each set")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if any("kodak" in text.lower() for text in args.set):
        raise SystemExit("never study settings on Kodak")
    tables = make_tables()
    results = {}
    for name, _, folder in (text.partition("=") for text in args.set):
        rows = []
        for path in image_files(Path(folder))[:args.limit]:
            image = np.ascontiguousarray(load_image(path)[..., :3])
            ycc = colour.to_ycc(image)
            row = {"image": path.name, "lattice_fraction": colour.lattice_fraction(image), "planes": ycc is not None}
            if ycc is not None:  # what each channel costs in either space
                row["rgb_bits"], row["ycc_bits"] = channel_bits(image, tables), channel_bits(ycc, tables)
            rows.append(row)
            print(name, row["image"], f"{row['lattice_fraction']:.4f}",
                  f"R G B {row['rgb_bits']} | Y Cb Cr {row['ycc_bits']}" if ycc is not None else "-", flush=True)
        summary = {"images": len(rows), "with_planes": sum(r["planes"] for r in rows),
                   "lattice_fraction_mean": float(np.mean([r["lattice_fraction"] for r in rows])),
                   "rgb_bits_per_pixel": float(np.mean([sum(r["rgb_bits"]) for r in rows if r["planes"]] or [0])),
                   "ycc_bits_per_pixel": float(np.mean([sum(r["ycc_bits"]) for r in rows if r["planes"]] or [0]))}
        results[name] = {"summary": summary, "images": rows}
        print(name, summary, flush=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Does the engine lose bits while it learns? Each image coded alone, and after another photo in the
same stripe (its state warmed there): the `max` engine, one stripe, colour, channel order and parity
fixed, center crops 512x384 of training photos (benchmarks/EXPERIMENTS.md, issue 33).

    python benchmarks/studies/warm_start.py
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from trainer.engine import coder
from trainer.engine.settings import PRESETS
from trainer.engine.tables import make_tables
from trainer.images.files import center_crop, load_image

REPO = Path(__file__).resolve().parents[2]

PHOTOS = REPO.parent / "shared" / "data" / "photos"
PAIRS = (("001", "005"), ("010", "012"), ("020", "023"))  # (warmed on, then coded)


def main() -> None:
    tables = make_tables()
    settings = replace(PRESETS["max"], stripe_rows=0, channel_order=0, parity=0, colour=0)
    for first, second in PAIRS:
        a, b = (center_crop(load_image(PHOTOS / f"{name}.png")[..., :3], (512, 384)) for name in (first, second))
        alone = coder.encode(b, settings, tables, threads=1)[1]
        lengths = np.zeros((2 * b.shape[0], b.shape[1], 3), np.float32)
        coder.encode(np.concatenate([a, b]), settings, tables, threads=1, lengths=lengths)
        after = float(lengths[b.shape[0]:].sum())
        print(f"photos/{second} (after {first}): alone {alone / b.size:.4f}, after {after / b.size:.4f} bpsp, "
              f"gain {100 * (1 - after / alone):.2f} %")


if __name__ == "__main__":
    main()

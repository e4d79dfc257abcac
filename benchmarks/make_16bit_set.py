"""Write 16-bit photo test sets from 8-bit photos (never a benchmark set such as Kodak).

- `deep/`: true 16-bit content. Each photo is box-downsampled by `--factor` with the mean kept at
  16-bit precision (round(mean * 257)): the low bytes carry real information, as in a scan or a
  raw conversion.
- `wide/`: 8-bit content widened to 16 bits (v * 257), as converters write 8-bit images at 16 bits.

    python benchmarks/make_16bit_set.py --images ../shared/data/photos/{005,012,023,036}.png --out /tmp/sets16
"""

import argparse
from pathlib import Path

import imagecodecs
import numpy as np

from trainer.images.files import load_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--crop", type=int, default=256, help="center crop side after downsampling")
    args = parser.parse_args()
    for kind in ("deep", "wide"):
        (args.out / kind).mkdir(parents=True, exist_ok=True)
    f = args.factor
    for path in args.images:
        photo = load_image(path).astype(np.float64)
        h, w = photo.shape[0] // f * f, photo.shape[1] // f * f
        small = photo[:h, :w].reshape(h // f, f, w // f, f, -1).mean(axis=(1, 3))
        y, x = max(0, (small.shape[0] - args.crop) // 2), max(0, (small.shape[1] - args.crop) // 2)
        small = small[y:y + args.crop, x:x + args.crop]
        deep = np.round(small * 257).astype(np.uint16)
        wide = np.round(small).astype(np.uint16) * 257
        for kind, samples in (("deep", deep), ("wide", wide)):
            (args.out / kind / f"{path.stem}.png").write_bytes(imagecodecs.png_encode(samples, level=9))
    print(f"{len(args.images)} photos -> {args.out}/deep, {args.out}/wide")


if __name__ == "__main__":
    main()

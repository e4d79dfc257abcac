"""Validation of online adaptation (trainer/adapt.py): bits per subpixel of whole images (or center
crops) under a context checkpoint, static and with each adaptation setting, teacher-forced with the
codec's blocks. Never run it on Kodak: choices are made on held-out photos and camera crops.

    python benchmarks/studies/adapt_study.py --checkpoints A/final B/final --images DIR [DIR ...] \
        --settings static 1024,1e-4,1 512,1e-4,1 --crop 512x384 --out benchmarks/adapt_study.json

A checkpoint may also be a codec bundle: an integer bundle (`--quantize integer`) is then
measured in its own arithmetic, the codec's exact predictions.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from trainer.codec.adapt import adapted_bpsp
from trainer.codec.bundle import MANIFEST_FILE, open_bundle
from trainer.config import Adaptation
from trainer.models.context import ContextModel
from trainer.images.files import center_crop, image_files, load_image


def parse_setting(text: str) -> Adaptation:
    """BLOCK,LR,STEPS[,DELAY[,EVERY]] -> Adaptation."""
    fields = text.split(",")
    return Adaptation(int(fields[0]), float(fields[1]), int(fields[2]), int(fields[3]) if len(fields) > 3 else 0,
                      int(fields[4]) if len(fields) > 4 else 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", nargs="+", type=Path, required=True)
    parser.add_argument("--images", nargs="+", type=Path, required=True, help="folders or image files")
    parser.add_argument("--settings", nargs="+", default=["static", "1024,1e-4,1"],
                        help="'static' or BLOCK,LR,STEPS[,DELAY[,EVERY]] (delay: 1 = trained on a second core, one block late; every: "
                             "train on every k-th pixel of a block)")
    parser.add_argument("--crop", default=None, help="WxH center crop of every image")
    parser.add_argument("--limit", type=int, default=0, help="first N images of each folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    crop = tuple(int(v) for v in args.crop.split("x")) if args.crop else None
    paths = []
    for entry in args.images:
        found = image_files(entry) if entry.is_dir() else [entry]
        paths += found[:args.limit] if args.limit else found
    if any("kodak" in str(p).lower() for p in paths):
        sys.exit("adapt_study: Kodak is the benchmark; choose settings on other images")
    images = [center_crop(load_image(p), crop) for p in paths]
    subpixels = sum(im.size for im in images)
    results = []
    for checkpoint in args.checkpoints:
        model = open_bundle(checkpoint).load_model() if (checkpoint / MANIFEST_FILE).is_file() \
            else ContextModel.from_pretrained(checkpoint)
        for setting in args.settings:
            adaptation = None if setting == "static" else parse_setting(setting)
            start = time.perf_counter()
            per_image = [adapted_bpsp(model, im, adaptation) for im in images]
            bpsp = sum(b * im.size for b, im in zip(per_image, images)) / subpixels
            row = {"checkpoint": str(checkpoint), "setting": setting, "bpsp": round(bpsp, 4),
                   "seconds": round(time.perf_counter() - start, 1),
                   "per_image": {p.name: round(b, 4) for p, b in zip(paths, per_image)}}
            results.append(row)
            print(f"{checkpoint}  {setting:>14}  {bpsp:.4f} bpsp  ({row['seconds']} s)", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"images": [str(p) for p in paths], "crop": args.crop,
                                        "subpixels": subpixels, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()

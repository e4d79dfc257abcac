"""The online engine's settings on validation images (never Kodak): bits against JPEG-XL e9 and
speed, each variant on the same images, every stream decoded and checked.

    python benchmarks/studies/engine_study.py --images ../shared/data/photos/{005,012,023,036}.png \
        --crop 512x384 --camera ../shared/data/camera --limit 12 \
        --variants fast max fast:stripe_rows=192 fast:lms_shift=8 --out benchmarks/results/engine_study.json

A variant is a preset, optionally with settings changed: PRESET[:KEY=VALUE[,KEY=VALUE...]].
Speeds are one thread (stripes in sequence), the median over the images after the first.

With --orders, which channel order the first variant codes best, and how near its encoder's
choice comes: every order of R, G, B coded in the given order (`channel_order=0`), the best of
all six and of the orders the encoder tries (trainer.engine.settings.ORDERS) per image, and the
encoder's own choice (`channel_order=1`), as ratios to the given order's payload bytes:

    python benchmarks/studies/engine_study.py --images ../shared/data/photos/{005,012,023,036}.png \
        --crop 512x384 --camera ../shared/data/camera --limit 11 --variants max --orders \
        --out benchmarks/results/channel_order.json
"""

import argparse
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path

import imagecodecs
import numpy as np

from trainer.engine import coder
from trainer.engine.settings import ORDERS, PRESETS, EngineSettings
from trainer.engine.tables import make_tables
from trainer.images.files import center_crop, image_files, load_image


def variant(text: str) -> EngineSettings:
    preset, _, changes = text.partition(":")
    values = PRESETS[preset].to_dict()
    for item in filter(None, changes.split(",")):
        key, _, value = item.partition("=")
        values[key] = int(value)
    return EngineSettings.from_dict(values)


def order_study(sets: dict, settings: EngineSettings, tables: dict) -> dict:
    given = replace(settings, channel_order=0)
    orders = list(itertools.permutations(range(3)))
    tried = [orders.index(order) for order in ORDERS]
    results = {"orders": ["".join("RGB"[c] for c in o) for o in orders], "sets": {}}
    for name, images in sets.items():
        sizes = np.array([[len(coder.encode(np.ascontiguousarray(image[..., list(order)]), given, tables)[0])
                           for order in orders] for image in images])
        chosen = sum(len(coder.encode(image, replace(given, channel_order=1), tables)[0]) for image in images)
        base = sizes[:, 0].sum()
        row = {"images": len(images), "per_order": dict(zip(results["orders"], (sizes.sum(0) / base).tolist())),
               "best_of_six": float(sizes.min(1).sum() / base), "best_of_tried": float(sizes[:, tried].min(1).sum() / base),
               "encoder_choice": chosen / base, "per_image": sizes.tolist()}
        results["sets"][name] = row
        print(f"{name:7s} " + "  ".join(f"{o} {r:.4f}" for o, r in row["per_order"].items())
              + f"  | best of 6 {row['best_of_six']:.4f}, of those tried {row['best_of_tried']:.4f},"
              f" the encoder's choice {row['encoder_choice']:.4f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", nargs="*", type=Path, default=[], help="held-out photos (files or folders)")
    parser.add_argument("--crop", default=None, help="WxH center crop of those")
    parser.add_argument("--camera", type=Path, default=None, help="a second source, whole images")
    parser.add_argument("--limit", type=int, default=0, help="first N images of --camera")
    parser.add_argument("--variants", nargs="+", default=["fast", "max"])
    parser.add_argument("--orders", action="store_true", help="the channel-order study of the first variant")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if any("kodak" in str(p).lower() for p in args.images + [args.camera or Path()]):
        raise SystemExit("never study settings on Kodak")
    crop = tuple(map(int, args.crop.split("x"))) if args.crop else None
    sets = {"photos": [center_crop(load_image(p), crop) for entry in args.images
                       for p in (image_files(entry) if entry.is_dir() else [entry])]}
    if args.camera:
        sets["camera"] = [load_image(p) for p in image_files(args.camera)[:args.limit or None]]
    if args.orders:
        args.out.write_text(json.dumps({"variant": args.variants[0],
                                        **order_study(sets, variant(args.variants[0]), make_tables())}, indent=1))
        return
    tables = make_tables()
    results = {"sets": {}}
    for name, images in sets.items():
        jxl = sum(len(imagecodecs.jpegxl_encode(im, lossless=True, distance=0, effort=9)) for im in images)
        subpixels = sum(im.size for im in images)
        row = {"images": len(images), "subpixels": subpixels, "jpegxl-e9": 8 * jxl / subpixels, "variants": {}}
        for text in args.variants:
            settings = variant(text)
            size, speeds = 0, []
            for image in images:
                start = time.perf_counter()
                payload, _ = coder.encode(image, settings, tables, threads=1)
                middle = time.perf_counter()
                assert np.array_equal(coder.decode(payload, image.shape, settings, tables, threads=1), image)
                speeds.append((image.size / (middle - start), image.size / (time.perf_counter() - middle)))
                size += len(payload)
            encode, decode = np.median(np.array(speeds[1:] or speeds), 0)
            row["variants"][text] = {"bpsp": 8 * size / subpixels, "vs_jpegxl_e9": size / jxl,
                                     "encode_subpixels_per_s": float(encode), "decode_subpixels_per_s": float(decode)}
            print(f"{name:7s} {text:30s} {8 * size / subpixels:.4f} bpsp  x{size / jxl:.4f} JPEG-XL e9  "
                  f"encode {encode / 1e6:.2f} M/s  decode {decode / 1e6:.2f} M/s", flush=True)
        results["sets"][name] = row
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Flat synthetic content (issue 9, item 5): a deterministic 320x200 screenshot-like image (flat
fills, hard edges, text, a gradient), coded for real by pixlm bundles (the model's own stream, and
the codec as shipped, which keeps the smaller of it and lossless WebP) and classical codecs.

    python benchmarks/studies/flat_study.py --bundles checkpoints/pixlm-context-v1 checkpoints/pixlm-context-v2 \
        --out benchmarks/results/flat_study.json
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from trainer.bench.baselines import BASELINES
from trainer.codec.registry import open_codec


def screenshot(width: int = 320, height: int = 200) -> Image.Image:
    image = Image.new("RGB", (width, height), (236, 236, 236))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 18), fill=(40, 60, 110))  # title bar
    draw.text((6, 4), "pixlm - lossless image codec", fill=(255, 255, 255))
    draw.rectangle((8, 28, 150, 190), fill=(255, 255, 255), outline=(160, 160, 160))
    for i, line in enumerate(["def encode(image):", "    model = load()", "    for t in fronts:", "        code(t)",
                              "return stream", "# 2.885 bpsp", "JPEG-XL e9", "Kodak: 24 images"]):
        draw.text((14, 34 + 18 * i), line, fill=(20, 20, 20) if i % 3 else (0, 90, 200))
    for x in range(160, 312):  # a horizontal gradient panel
        shade = int(255 * (x - 160) / 151)
        draw.line((x, 28, x, 100), fill=(shade, 128, 255 - shade))
    draw.ellipse((180, 110, 260, 190), fill=(230, 80, 60), outline=(0, 0, 0))
    draw.rectangle((270, 120, 312, 180), fill=(60, 170, 90))
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", nargs="+", type=Path, default=[])
    parser.add_argument("--baselines", default="png,webp,jpegxl-e9")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    image = screenshot()
    array = np.asarray(image)
    out = {"image": "screenshot 320x200 RGB (benchmarks/studies/flat_study.py)", "subpixels": array.size, "bpsp": {}}
    for name in args.baselines.split(","):
        baseline = BASELINES[name]
        out["bpsp"][name] = round(8 * len(baseline.encode(array)) / array.size, 4)
    with tempfile.TemporaryDirectory() as tmp:
        for bundle in args.bundles:
            for fallback in (False, True):  # the model's own stream, then the codec as shipped
                codec = open_codec(bundle, progress=False, fallback=fallback)
                report = codec.encode(image, Path(tmp) / "s.pxl")
                decoded, _ = codec.decode(Path(tmp) / "s.pxl")
                assert np.array_equal(decoded, array)
                name = bundle.name + ("" if fallback else " (model only)")
                out["bpsp"][name] = round(report.bpsp, 4)
                out.setdefault("fallback_used", {})[name] = report.fallback
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Issue 10: where an integer bundle's bpsp gap to its float model comes from (static, teacher-forced).

Same float32 masters, center crops of validation photos (never Kodak), all pixels in one batch:

- float: the float model (the codec's float path);
- float, mixture grids: the float network, its mixture parameters rounded onto the integer tables'
  grids (logits and log scales to 1/16, means to 1/16 of a pixel value), float mixture;
- <bundle> net, float mixture: the integer network's mixture parameters, float mixture;
- <bundle>: the integer codec's own tables;
- <bundle>, int16 weights: the same activation grids with every weight on an int16 grid.

    python benchmarks/studies/integer_grids.py --bundles checkpoints/pixlm-context-v4 checkpoints/pixlm-context-v5 \
        --images ../shared/data/photos/{005,012,023,036}.png --crop 256 --out benchmarks/results/integer_grids.json
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from trainer.codec.bundle import open_bundle
from trainer.models.context import LN2, ContextModel, discretized_logistic_log_prob, scale
from trainer.models.integer_context import IntegerContextModel, to_units
from trainer.models.integer_mixture import LOGIT_GRID, UNITS
from trainer.images.files import load_image


def float_bits(model: ContextModel, image: torch.Tensor, ys, xs, targets, grids: bool) -> float:
    features = model.features(model.context(model.pad(image), ys, xs))
    scaled, total = scale(targets), 0.0
    for c in range(model.config.channels):
        weights, means, log_scales = model.mixture(features, c, scaled[:, :c])
        if grids:
            weights = torch.round(weights * LOGIT_GRID) / LOGIT_GRID
            log_scales = torch.round(log_scales * LOGIT_GRID) / LOGIT_GRID
            means = torch.round((means + 1.0) * UNITS) / UNITS - 1.0
        total += (-discretized_logistic_log_prob(targets[:, c], weights, means, log_scales) / LN2).double().sum().item()
    return total


def integer_bits(model: IntegerContextModel, image, ys, xs, targets, float_mixture: bool) -> float:
    context = model.context(model.pad(image), ys, xs)
    if not float_mixture:
        return model.bits(context, targets).double().sum().item()
    features, previous, total = model.features(context), to_units(targets), 0.0
    for c in range(model.config.channels):
        (logits, means, log_scales), _ = model.mixture(features, c, previous[:, :c])
        total += (-discretized_logistic_log_prob(targets[:, c], logits.float(), means.float(),
                                                  log_scales.float().clamp(min=-7.0)) / LN2).double().sum().item()
    return total


def with_int16_weights(bundle_dir: Path) -> IntegerContextModel:
    model = open_bundle(bundle_dir).load_model()
    for linear in model.linears:
        linear.top = 32767
        linear.refresh()
    return model


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundles", nargs="+", type=Path, required=True, help="integer bundles of the same masters")
    ap.add_argument("--images", nargs="+", type=Path, required=True)
    ap.add_argument("--crop", type=int, default=256, help="side of the center crop")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    float_model = ContextModel.from_pretrained(args.bundles[0]).eval()
    variants = {"float": lambda *a: float_bits(float_model, *a, grids=False),
                "float, mixture grids": lambda *a: float_bits(float_model, *a, grids=True)}
    for folder in args.bundles:
        integer, wide = open_bundle(folder).load_model(), with_int16_weights(folder)
        if not isinstance(integer, IntegerContextModel):
            sys.exit(f"{folder}: not an integer bundle")
        variants[f"{folder.name} net, float mixture"] = lambda *a, m=integer: integer_bits(m, *a, float_mixture=True)
        variants[folder.name] = lambda *a, m=integer: integer_bits(m, *a, float_mixture=False)
        variants[f"{folder.name}, int16 weights"] = lambda *a, m=wide: integer_bits(m, *a, float_mixture=False)
    totals, subpixels, rows = dict.fromkeys(variants, 0.0), 0, []
    for path in args.images:
        image = load_image(path)
        y0, x0 = max(0, (image.shape[0] - args.crop) // 2), max(0, (image.shape[1] - args.crop) // 2)
        image = torch.from_numpy(np.ascontiguousarray(image[y0:y0 + args.crop, x0:x0 + args.crop]))
        ys, xs = (t.flatten() for t in torch.meshgrid(torch.arange(image.shape[0]), torch.arange(image.shape[1]),
                                                       indexing="ij"))
        targets = image[ys, xs]
        row = {"image": path.name}
        for name, bits in variants.items():
            value = bits(image, ys, xs, targets)
            totals[name] += value
            row[name] = round(value / image.numel(), 4)
        subpixels += image.numel()
        rows.append(row)
        print(json.dumps(row), flush=True)
    overall = {name: round(value / subpixels, 4) for name, value in totals.items()}
    report = {"crop": args.crop, "all": overall,
              "vs_float_percent": {k: round(100 * (v / overall["float"] - 1), 2) for k, v in overall.items()},
              "per_image": rows}
    print(json.dumps({k: report[k] for k in ("all", "vs_float_percent")}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

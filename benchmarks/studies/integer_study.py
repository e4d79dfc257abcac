"""Issue 10, first measurement: what fixed-point arithmetic would cost a context model in bpsp.

Portable streams need predictions that every machine computes identically. Sums of products of
small integers are exact in float32 below 2**24 (float64: 2**53) whatever the order, the thread
count or the CPU, so a network whose Linear layers see integer weights and integer activations,
with every nonlinearity a table lookup, computes the same numbers everywhere. This script
simulates such a network on the validation crops (static model, teacher-forced; never Kodak)
and reports the bpsp against float32:

- weights: int8 with one float scale per output row (trunk and heads); the linear skip
  predictors, whose small weights do not survive 8 bits, int16 per row;
- activations entering each hidden Linear: `act_bits` signed integers, one scale per layer
  calibrated on training crops (the trunk's first input is already on a pixel grid and stays);
- pre-activations (what a GELU table would be indexed by): `pre_bits` integers, one scale per layer;
- the 256-way table: the mixture's inputs rounded as integer sigmoid/exp tables would need them
  (weight logits and log scales to 1/`param_grid`, means to 1/`param_grid` of a pixel value).

    python benchmarks/studies/integer_study.py --checkpoint checkpoints/pixlm-context-v3 --out benchmarks/results/integer_study.json
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

from trainer.config import DataConfig
from trainer.models.context import STEP, ContextModel
from trainer.train.context import evaluate, load_images, val_windows
from trainer.train.data import resolve_images, split_by_image


def quantize_rows(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-row integer grid, returned dequantized."""
    top = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(1, keepdim=True).clamp(min=1e-12) / top
    return torch.round(weight / scale).clamp(-top, top) * scale


class Grid:
    """Round a tensor onto a symmetric integer grid whose scale is calibrated (max |x|) first."""

    def __init__(self, bits: int):
        self.top, self.peak, self.calibrating = 2 ** (bits - 1) - 1, 0.0, True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self.peak = max(self.peak, x.abs().max().item())
            return x
        scale = self.peak / self.top
        return torch.round(x / scale).clamp(-self.top, self.top) * scale


def fixed_point(model: ContextModel, act_bits: int, pre_bits: int) -> list[Grid]:
    """Quantize `model`'s weights in place and hook its hidden Linears; returns the grids."""
    grids = []
    hidden = [m for m in [*model.trunk, *[x for h in model.heads for x in h]] if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for linear in hidden:
            linear.weight.copy_(quantize_rows(linear.weight, 8))
        for skip in model.skips:
            skip.weight.copy_(quantize_rows(skip.weight, 16))
    first = model.trunk[0]
    for linear in hidden:
        if linear is not first:  # the trunk's input is pixel differences already on a grid
            grid = Grid(act_bits)
            linear.register_forward_pre_hook(lambda m, args, g=grid: (g(args[0]),))
            grids.append(grid)
        if not any(linear is h[-1] for h in model.heads):  # mixture parameters are the heads' outputs
            grid = Grid(pre_bits)
            linear.register_forward_hook(lambda m, args, out, g=grid: g(out))
            grids.append(grid)
    return grids


def round_mixture(model: ContextModel, param_grid: int) -> None:
    """Weight logits and log scales onto a 1/param_grid grid, means onto 1/param_grid of a pixel
    value (what integer sigmoid and exp tables would index)."""
    original = model.mixture

    def mixture(features, channel, previous):
        weights, means, log_scales = original(features, channel, previous)
        grid = lambda t, unit: torch.round(t / unit) * unit  # noqa: E731
        return grid(weights, 1 / param_grid), grid(means, STEP / param_grid), grid(log_scales, 1 / param_grid)

    model.mixture = mixture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--act-bits", type=int, nargs="+", default=[8, 10])
    parser.add_argument("--pre-bits", type=int, default=12)
    parser.add_argument("--param-grid", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    train_paths, val_paths = split_by_image(resolve_images(DataConfig(train_dirs=["default"])), 4, 0)
    if any("kodak" in str(p).lower() for p in val_paths + train_paths):
        sys.exit("integer_study: Kodak is the benchmark")
    model = ContextModel.from_pretrained(args.checkpoint)
    val = val_windows(load_images(val_paths, 3), model, 4, 128)
    calibration = val_windows(load_images(train_paths[:8], 3), model, 2, 64)
    start = time.perf_counter()
    out = {"checkpoint": str(args.checkpoint), "val": "4 held-out photos x 4 crops 128x128 (train_context's)",
           "float32": round(evaluate(model, *val), 4), "rows": []}
    for act_bits in args.act_bits:
        for param_grid in [None, *args.param_grid]:
            candidate = ContextModel.from_pretrained(args.checkpoint)
            grids = fixed_point(candidate, act_bits, args.pre_bits)
            with torch.no_grad():
                candidate(*calibration)  # calibrate every grid's scale
            for grid in grids:
                grid.calibrating = False
            if param_grid:
                round_mixture(candidate, param_grid)
            bpsp = evaluate(candidate, *val)
            row = {"act_bits": act_bits, "pre_bits": args.pre_bits, "param_grid": param_grid, "bpsp": round(bpsp, 4),
                   "cost_percent": round(100 * (bpsp / out["float32"] - 1), 3)}
            out["rows"].append(row)
            print(json.dumps(row), flush=True)
    out["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Issue 10: how fast can an integer context bundle code on this machine, at best?

Counts the arithmetic of one subpixel (the network's multiply-adds forward, and the online
adaptation's forward + backward steps) from the bundle itself, measures this machine's matrix
multiply rate at the network's shapes (float64: what the exact sums use; float32 for comparison)
and the codec's own pieces (one adaptation step, one block's 256-way tables), and derives ceilings:
the subpixels/s that the arithmetic alone allows if every multiply ran at the measured GEMM rate
on every core, against the issue's aim (0.5 M decode, 1 M encode subpixels/s on 2 cores).

    python benchmarks/studies/speed_floor.py --bundle checkpoints/pixlm-context-v5 \
        --image ../shared/data/photos/012.png --out benchmarks/results/speed_floor.json

Timings are medians of repeated runs in this process; the machine's other load shows in them.
"""

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from trainer.codec.adapt import blocks
from trainer.codec.bundle import open_bundle
from trainer.models.integer_context import IntegerContextModel, to_units
from trainer.images.files import load_image

AIM = {"decode": 500_000, "encode": 1_000_000}  # subpixels/s on 2 cores (issue 10)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_rate(dtype, threads: int, rows: int, width: int, repeats: int) -> float:
    """GFLOP/s of (rows x width) @ (width x width) on `threads` torch threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(rows, width, dtype=dtype), torch.randn(width, width, dtype=dtype)
    seconds = median_seconds(lambda: [a @ b for _ in range(20)], repeats) / 20
    return 2 * rows * width * width / seconds / 1e9


def multiply_adds(model: IntegerContextModel) -> dict:
    """Per pixel: the forward pass, and one adaptation step (forward, weight gradients, input
    gradients of every layer but the first: ~3x forward)."""
    forward = sum(lin.w_int.numel() for lin in model.linears)
    first = model.trunk[0][0].w_int.numel()
    return {"forward": forward, "adaptation_step": 3 * forward - first}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path("checkpoints/pixlm-context-v5"))
    parser.add_argument("--image", type=Path, required=True, help="a validation photo (never Kodak)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    bundle = open_bundle(args.bundle)
    model = bundle.load_model()
    if not isinstance(model, IntegerContextModel) or bundle.adaptation is None:
        raise SystemExit(f"{args.bundle}: not an adapted integer bundle")
    settings = bundle.adaptation
    cores = os.cpu_count()
    channels = model.config.channels

    macs = multiply_adds(model)
    flop_per_subpixel = {  # 2 FLOP per multiply-add, per subpixel (a pixel is `channels` subpixels)
        "forward": 2 * macs["forward"] / channels,
        "adaptation": 2 * settings.steps * macs["adaptation_step"] / channels,
    }
    flop_per_subpixel["total"] = flop_per_subpixel["forward"] + flop_per_subpixel["adaptation"]
    rows = settings.block
    gemm = {f"{dtype}_{threads}_threads": gemm_rate(getattr(torch, dtype), threads, rows, model.config.hidden,
                                                    args.repeats)
            for dtype in ("float64", "float32") for threads in sorted({1, cores})}

    # the codec's own pieces, one thread, on one full adaptation block of a validation photo
    torch.set_num_threads(1)
    image = load_image(args.image)
    height, width, _ = image.shape
    every = list(blocks(height, width, model.config.lag, settings.block))
    fronts, _ = every[len(every) // 2]  # a full block from the middle of the image
    ys = np.concatenate([f[0] for f in fronts])
    xs = np.concatenate([f[1] for f in fronts])
    context = model.context(model.pad(torch.from_numpy(image.copy())), torch.from_numpy(ys), torch.from_numpy(xs))
    targets = torch.from_numpy(image[ys, xs])
    optimizer = model.optimizer(settings.lr)
    step = median_seconds(lambda: model.train_step(context, targets, optimizer), args.repeats)
    previous = to_units(targets)
    tables = median_seconds(lambda: [model.frequencies(model.features(context), c, previous[:, :c],
                                                       bundle.precision) for c in range(channels)], args.repeats)
    subpixels = len(ys) * channels
    measured = {
        "block_pixels": len(ys),
        "adaptation_step_s": step,
        "adaptation_s_per_subpixel": settings.steps * step / subpixels,
        "forward_and_tables_s_per_subpixel": tables / subpixels,
        "adaptation_gflop_per_s": flop_per_subpixel["adaptation"] / settings.steps * subpixels / step / 1e9,
    }

    best64 = max(v for k, v in gemm.items() if k.startswith("float64"))
    best32 = max(v for k, v in gemm.items() if k.startswith("float32"))
    ceilings = {  # subpixels/s if every FLOP ran at the GEMM rate on all cores (nothing else costs)
        "adapted_float64_gemm": best64 * 1e9 / flop_per_subpixel["total"],
        "adapted_float32_gemm": best32 * 1e9 / flop_per_subpixel["total"],
        "static_float64_gemm": best64 * 1e9 / flop_per_subpixel["forward"],
        "static_float32_gemm": best32 * 1e9 / flop_per_subpixel["forward"],
        # the codec as built: the adaptation's steps on one core, the tables on the other
        "adapted_measured_pieces": 1 / max(measured["adaptation_s_per_subpixel"],
                                           measured["forward_and_tables_s_per_subpixel"]),
    }
    report = {
        "bundle": str(args.bundle), "image": str(args.image), "cores": cores, "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "adaptation": asdict(settings),
        "multiply_adds_per_pixel": macs, "flop_per_subpixel": flop_per_subpixel, "gemm_gflop_per_s": gemm,
        "measured_one_thread": measured, "ceiling_subpixels_per_s": ceilings, "aim_subpixels_per_s": AIM,
        "aim_needs_tflop_per_s": {k: v * flop_per_subpixel["total"] / 1e12 for k, v in AIM.items()},
    }
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

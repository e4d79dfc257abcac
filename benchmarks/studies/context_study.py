"""Reproduce the context-student figures of benchmarks/EXPERIMENTS.md (validation photos only, never Kodak).

    python benchmarks/studies/context_study.py crops --checkpoint checkpoints/pixlm-context-v1
        classical codecs, the plane predictor's order-0 entropy, and a checkpoint in float32 and
        int8, all on the validation crops train_context.py evaluates (4 held-out photos, seed 0)
    python benchmarks/studies/context_study.py ab --steps 150
        the short A/B protocol: the current model, 150 steps from 20 training photos, same batches
        every run, bf16 autocast, one thread; validation on 2 crops per held-out photo

Each prints one JSON line (and --out FILE writes it).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from trainer.config import DataConfig
from trainer.models.context import STEP, ContextConfig, ContextModel, ImageStack, scale
from trainer.train.context import evaluate, load_images, val_windows
from trainer.train.data import resolve_images, split_by_image
from trainer.models.quantize import dequantize_state, quantize_state


def split(val_images: int = 4, seed: int = 0):
    return split_by_image(resolve_images(DataConfig(train_dirs=["default"])), val_images, seed)


def crops(args) -> dict:
    import imagecodecs

    _, val_paths = split()
    images = load_images(val_paths, 3)
    model = ContextModel.from_pretrained(args.checkpoint) if args.checkpoint else ContextModel(ContextConfig())
    contexts, targets = val_windows(images, model, args.per_image, args.size)
    # The same crops as arrays, for the classical codecs (val_windows' positions).
    arrays = []
    for image in images:
        h, w, _ = image.shape
        sy, sx = min(args.size, h), min(args.size, w)
        for i in range(args.per_image):
            y, x = (h - sy) * (i + 1) // (args.per_image + 1), (w - sx) * (args.per_image - i) // (args.per_image + 1)
            arrays.append(np.ascontiguousarray(image[y:y + sy, x:x + sx]))
    n = sum(a.size for a in arrays)
    out = {"val_images": [p.name for p in val_paths], "crops": len(arrays), "size": args.size, "subpixels": n}
    for name, encode in (("jpegxl-e9", lambda a: imagecodecs.jpegxl_encode(a, lossless=True, effort=9)),
                         ("webp-m6", lambda a: imagecodecs.webp_encode(a, lossless=True, method=6)),
                         ("png-9", lambda a: imagecodecs.png_encode(a, level=9))):
        out[name] = sum(len(encode(a)) for a in arrays) * 8 / n
    # No learning: the skip predictor as initialised (W + N - NW, plus the previous channel's
    # residual), order-0 entropy of its rounded residuals per channel.
    fresh, x, entropies = ContextModel(model.config), scale(targets), []  # the same window as the checkpoint
    with torch.no_grad():
        for c in range(3):
            predicted = fresh.skips[c](torch.cat([contexts, x[:, :c]], 1))[:, 0]
            _, counts = torch.unique(torch.round((x[:, c] - predicted) / STEP), return_counts=True)
            p = counts.double() / counts.sum()
            entropies.append(-(p * p.log2()).sum().item())
    out["plane_predictor_order0"] = sum(entropies) / 3
    if args.checkpoint:
        torch.set_num_threads(1)
        out["checkpoint_fp32"] = evaluate(model, contexts, targets)
        model.load_state_dict(dequantize_state(quantize_state(model.state_dict())))
        out["checkpoint_int8"] = evaluate(model, contexts, targets)
    return out


def ab(args) -> dict:
    torch.set_num_threads(1)
    train_paths, val_paths = split()
    train = load_images(train_paths[:20], 3)
    torch.manual_seed(0)
    model = ContextModel(ContextConfig(**dict(_value(item) for item in args.model)))
    stack = ImageStack(train, model)
    contexts, targets = val_windows(load_images(val_paths, 3), model, 2, 128)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    start = time.perf_counter()
    for step in range(args.steps):
        batch = stack.crops(model, 32, 32, np.random.default_rng([0, step]))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(*batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {"steps": args.steps, "seconds": round(time.perf_counter() - start, 1),
            "val_bpsp": evaluate(model, contexts, targets)}


def _value(item: str):
    key, _, value = item.partition("=")
    return key, json.loads(value.lower() if value.lower() in ("true", "false") else value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("crops")
    c.add_argument("--checkpoint", type=Path, default=None)
    c.add_argument("--per-image", type=int, default=4)
    c.add_argument("--size", type=int, default=128)
    a = commands.add_parser("ab")
    a.add_argument("--steps", type=int, default=150)
    a.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE", help="ContextConfig fields, e.g. classical=true")
    for cmd in (c, a):
        cmd.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = json.dumps({"command": args.command, **(crops(args) if args.command == "crops" else ab(args))})
    print(result)
    if args.out:
        args.out.write_text(result + "\n")


if __name__ == "__main__":
    main()

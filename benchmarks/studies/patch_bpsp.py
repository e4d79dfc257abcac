"""Context models on the very patches an LM was validated on: bits per subpixel of the pixels of a
patch file's validation split, each predicted from its causal context in the whole image (as the
context codec predicts it, without online adaptation). Puts an LM teacher's val bpsp (its
metrics.json, same patches) beside context students.

    python benchmarks/studies/patch_bpsp.py --patch-file gpu/patches-smollm2.npz \
        --models checkpoints/pixlm-context-v3 checkpoints/context_distill_llm/final ... --out FILE.json
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


from trainer.models.context import ContextModel, pixel_grid
from trainer.images.files import load_image
from trainer.train.data import data_root


@torch.no_grad()
def patch_bpsp(model: ContextModel, images: dict, origin: np.ndarray, names, height: int, width: int) -> float:
    bits = count = 0.0
    dy, dx = pixel_grid(height, width)
    for index, y, x in origin:
        image = images[names[index]]
        canvas = model.pad(torch.from_numpy(image))
        ys, xs = y + dy, x + dx
        targets = torch.from_numpy(image[ys.numpy(), xs.numpy()])
        bits += model(model.context(canvas, ys, xs), targets).double().sum().item()
        count += targets.numel()
    return bits / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patch-file", type=Path, required=True)
    ap.add_argument("--images", type=Path, default=data_root() / "photos", help="folder of the patch file's images")
    ap.add_argument("--models", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    with np.load(args.patch_file) as data:
        meta = json.loads(str(data["meta"]))
        origin, names = data["val_origin"], data["val_images"].tolist()
    images = {n: np.ascontiguousarray(load_image(args.images / n)) for n in names}
    results = {"patch_file": str(args.patch_file), "patches": len(origin), "images": names, "bpsp": {}}
    for folder in args.models:
        model = ContextModel.from_pretrained(folder).eval()
        results["bpsp"][str(folder)] = patch_bpsp(model, images, origin, names, meta["patch_height"], meta["patch_width"])
        print(f"{folder}: {results['bpsp'][str(folder)]:.4f} bpsp", flush=True)
    if args.out.exists():
        sys.exit(f"{args.out} exists; not overwriting it")
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Does a network trained offline earn bits inside the engine? (issue 33, item 1)

Trains the engine's network (trainer/engine/models/network.py: 13 causal inputs, one hidden layer,
the value's offset from (N + W + 1) / 2 in 1/16 pixel) on the training photos (never the held-out
four, never Kodak), in float, then quantizes it to its integer form; then codes the held-out photo
crops and the camera crops with the `max` engine with and without it (`network` 0 / 1: its
prediction one more input of the least squares) and writes bits and times as JSON.

    python benchmarks/studies/network_study.py --out benchmarks/results/network_study.json
"""

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from trainer.engine import coder
from trainer.engine.models import network
from trainer.engine.settings import ORDERS, PRESETS
from trainer.engine.tables import make_tables
from trainer.images.files import center_crop, image_files, load_image

REPO = Path(__file__).resolve().parents[2]

HELD_OUT = ("005", "012", "023", "036")  # the held-out photos of benchmarks/results/heldout
DATA = REPO.parent / "shared" / "data"


def ycc(image: np.ndarray) -> np.ndarray:
    """BT.601 Y, Cb, Cr of an RGB image, rounded (training views of decoded-JPEG planes)."""
    rgb = image.astype(np.float64)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    cb = 128 + (rgb[..., 2] - y) * 0.564
    cr = 128 + (rgb[..., 0] - y) * 0.713
    return np.clip(np.round(np.stack([y, cb, cr], -1)), 0, 255).astype(np.uint8)


def samples(photos: list[Path], per_image: int, seed: int = 0) -> dict:
    """{slot: (features, target offset in 1/16 pixel)} from every photo, each channel order, RGB and YCbCr."""
    rng = np.random.default_rng(seed)
    out = {slot: ([], []) for slot in range(network.SLOTS)}
    for path in photos:
        image = load_image(path)[..., :3]
        for view in (image, ycc(image)):
            for order in ORDERS:
                permuted = np.ascontiguousarray(view[..., list(order)])
                for slot in range(network.SLOTS):
                    f, ref = network.features_numpy(permuted, slot)
                    value = permuted[2:, 2:-2, slot].reshape(-1).astype(np.int64)
                    pick = rng.choice(len(ref), min(per_image, len(ref)), replace=False)
                    out[slot][0].append(f[pick])
                    out[slot][1].append((value[pick] - ref[pick]) * 16)
    return {slot: (np.concatenate(f), np.concatenate(t)) for slot, (f, t) in out.items()}


def train(data: dict, hidden: int, epochs: int, seed: int = 0) -> list[dict]:
    import torch

    torch.manual_seed(seed)
    layers = []
    for slot in range(network.SLOTS):
        f, target = (torch.tensor(a, dtype=torch.float32) for a in data[slot])
        model = torch.nn.Sequential(torch.nn.Linear(network.D, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for epoch in range(epochs):
            for batch in torch.randperm(len(f)).split(4096):
                loss = torch.nn.functional.smooth_l1_loss(model(f[batch])[:, 0], target[batch], beta=16.0)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        layers.append({"w1": model[0].weight.detach().numpy().astype(np.float64),
                       "b1": model[0].bias.detach().numpy().astype(np.float64),
                       "w2": model[2].weight.detach().numpy()[0].astype(np.float64),
                       "b2": float(model[2].bias.item())})
    return layers


def code(images: dict, settings, tables: dict) -> dict:
    def one(item):
        name, image = item
        start = time.perf_counter()
        payload, _ = coder.encode(image, settings, tables, threads=1)
        return name, len(payload), time.perf_counter() - start

    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(one, images.items()))
    subpixels = sum(image.size for image in images.values())
    return {"bpsp": round(8 * sum(b for _, b, _ in done) / subpixels, 4),
            "per_image": {name: round(8 * b / images[name].size, 4) for name, b, _ in done},
            "encode_subpixels_per_s_per_thread": round(subpixels / sum(s for _, _, s in done))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-image", type=int, default=4000)
    parser.add_argument("--camera", type=int, default=8, help="camera crops 000.. coded")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    photos = [p for p in image_files(DATA / "photos") if p.stem not in HELD_OUT]
    start = time.perf_counter()
    data = samples(photos, args.per_image)
    layers = train(data, args.hidden, args.epochs)
    net = network.quantize(layers)
    fit = {}
    for slot in range(network.SLOTS):
        f, target = data[slot]
        fit[slot] = {"mae_ref": round(float(np.abs(target).mean()) / 16, 4),
                     "mae_network_int": round(float(np.abs(network.predict_numpy(net, f, slot) - target).mean()) / 16, 4)}
    trained = round(time.perf_counter() - start, 1)
    tables = make_tables()
    with_net = {**tables, **{f"net_{k}": v for k, v in net._asdict().items()}}
    sets = {"heldout": {p.stem: center_crop(load_image(DATA / "photos" / f"{p}.png")[..., :3], (512, 384))
                        for p in map(Path, HELD_OUT)},
            "camera": {p.stem: load_image(p)[..., :3] for p in image_files(DATA / "camera")[:args.camera]}}
    results = {}
    for name, images in sets.items():
        off = code(images, PRESETS["max"], with_net)
        on = code(images, replace(PRESETS["max"], network=1), with_net)
        results[name] = {"network_off": off, "network_on": on,
                         "change_percent": round(100 * (on["bpsp"] / off["bpsp"] - 1), 2)}
        print(name, results[name]["change_percent"], off["bpsp"], on["bpsp"], flush=True)
    out = {"command": " ".join(sys.argv), "hidden": args.hidden, "epochs": args.epochs,
           "training_photos": len(photos), "samples_per_slot": len(data[0][1]), "train_seconds": trained,
           "fit_in_pixels": fit, "sets": results}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    np.savez(args.out.with_suffix(".npz"), **net._asdict())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

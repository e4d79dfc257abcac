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
from trainer.engine.network_training import fit_report, samples, train
from trainer.engine.settings import PRESETS
from trainer.engine.tables import make_tables
from trainer.images.files import center_crop, image_files, load_image

REPO = Path(__file__).resolve().parents[2]

HELD_OUT = ("005", "012", "023", "036")  # the held-out photos of benchmarks/results/heldout
DATA = REPO.parent / "shared" / "data"


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
    data = samples([load_image(p) for p in photos], args.per_image)
    layers, _ = train(data, args.hidden, args.epochs)
    net = network.quantize(layers)
    fit = fit_report(net, data)
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

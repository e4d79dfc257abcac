"""Training the engine's network (trainer/engine/models/network.py) on images: samples of its
inputs and targets, a float network per channel slot trained with torch, then its integer form.

Used by `pixlm poc` (on a user's images, within a budget) and benchmarks/studies/network_study.py
(on the training photos). Needs torch (`pip install pixlm[train]`); the codec that runs the
trained network does not.
"""

import time

import numpy as np

from trainer.engine.models import network
from trainer.engine.settings import ORDERS


def ycc(image: np.ndarray) -> np.ndarray:
    """BT.601 Y, Cb, Cr of an RGB image, rounded (training views of decoded-JPEG planes)."""
    rgb = image.astype(np.float64)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    cb = 128 + (rgb[..., 2] - y) * 0.564
    cr = 128 + (rgb[..., 0] - y) * 0.713
    return np.clip(np.round(np.stack([y, cb, cr], -1)), 0, 255).astype(np.uint8)


def samples(images: list[np.ndarray], per_image: int, seed: int = 0) -> dict:
    """{slot: (features (N, D), target: the value minus ref in 1/16 pixel)} from every image (RGB, at
    least 5x5), each channel order the encoder may choose, as R, G, B and as Y, Cb, Cr."""
    rng = np.random.default_rng(seed)
    out = {slot: ([], []) for slot in range(network.SLOTS)}
    for image in images:
        for view in (image[..., :3], ycc(image[..., :3])):
            for order in ORDERS:
                permuted = np.ascontiguousarray(view[..., list(order)])
                for slot in range(network.SLOTS):
                    f, ref = network.features_numpy(permuted, slot)
                    value = permuted[2:, 2:-2, slot].reshape(-1).astype(np.int64)
                    pick = rng.choice(len(ref), min(per_image, len(ref)), replace=False)
                    out[slot][0].append(f[pick])
                    out[slot][1].append((value[pick] - ref[pick]) * 16)
    return {slot: (np.concatenate(f), np.concatenate(t)) for slot, (f, t) in out.items()}


def train(data: dict, hidden: int = 32, epochs: int = 3, seconds: float | None = None, seed: int = 0) -> tuple[list[dict], int]:
    """(float layers per slot, epochs run): Adam on a smooth L1 loss, `epochs` passes or until
    `seconds` are spent (at least one pass)."""
    import torch

    torch.manual_seed(seed)
    models = [torch.nn.Sequential(torch.nn.Linear(network.D, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
              for _ in range(network.SLOTS)]
    optimizers = [torch.optim.Adam(m.parameters(), lr=3e-3) for m in models]
    tensors = [tuple(torch.tensor(a, dtype=torch.float32) for a in data[slot]) for slot in range(network.SLOTS)]
    start, done = time.perf_counter(), 0
    while done < epochs and (done == 0 or seconds is None or time.perf_counter() - start < seconds):
        for model, optimizer, (f, target) in zip(models, optimizers, tensors):
            for batch in torch.randperm(len(f)).split(4096):
                loss = torch.nn.functional.smooth_l1_loss(model(f[batch])[:, 0], target[batch], beta=16.0)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        done += 1
    layers = [{"w1": m[0].weight.detach().numpy().astype(np.float64), "b1": m[0].bias.detach().numpy().astype(np.float64),
               "w2": m[2].weight.detach().numpy()[0].astype(np.float64), "b2": float(m[2].bias.item())} for m in models]
    return layers, done


def fit_report(net: network.Net, data: dict) -> dict:
    """Per slot, the mean |error| in pixels of the plain reference (N + W) / 2 and of the integer network."""
    return {slot: {"mae_ref": round(float(np.abs(target).mean()) / 16, 4),
                   "mae_network_int": round(float(np.abs(network.predict_numpy(net, f, slot) - target).mean()) / 16, 4)}
            for slot, (f, target) in data.items()}

"""A preprocessed patch file: the training and validation patches of a recipe as uint8 arrays.

What travels to a GPU machine instead of the image folders (tens of MiB, not hundreds), and what a
data loader reads without decoding images or building Arrow caches. One `.npz` holds, per split,

    windows  (N, context_rows + patch_height, margin + patch_width + margin, C) uint8
    inside   (N, context_rows, margin + patch_width + margin) bool: context pixel inside the image
    origin   (N, 3) int32: image index, y, x of the patch;  images: the image file names

plus the prompt geometry it was cut for. Token ids are made per item by the recipe's
PromptBuilder, exactly as `data.patch_dataset` makes them from the images (tested).

    python write_patch_file.py recipe=lora_smollm2_gpu data.patch_file=gpu/patches.npz
"""

import json
from pathlib import Path

import numpy as np
import torch

from trainer.config import TrainConfig
from trainer.tokenize.pixels import FILL, crop_positions, patch_values
from trainer.images.files import load_image
from trainer.tokenize.prompt import PromptBuilder
from trainer.train.data import DataError, split_images

GEOMETRY = ("patch_height", "patch_width", "context_rows", "context_margin")


def cut(paths: list[Path], prompt: PromptBuilder, per_image: int, seed: int) -> dict:
    """The arrays of one split (random full-size patches, seeded per image as in data.py)."""
    spec = prompt.spec
    windows, inside, origin = [], [], []
    for index, path in enumerate(paths):
        image = load_image(path)
        if image.shape[0] < spec.patch_height or image.shape[1] < spec.patch_width:
            raise DataError(f"{path}: smaller than a {spec.patch_width}x{spec.patch_height} patch")
        for patch in crop_positions(image.shape, spec.patch_height, spec.patch_width, per_image, seed, path.name):
            context = prompt.context(image, patch)
            body = patch_values(image, patch).reshape(patch.height, patch.width, -1)
            window = np.zeros((spec.context_rows + spec.patch_height,) + context.shape[1:], dtype=np.uint8)
            window[:spec.context_rows] = np.clip(context, 0, 255)
            window[spec.context_rows:, spec.context_margin:spec.context_margin + spec.patch_width] = body
            windows.append(window)
            inside.append((context != FILL).all(-1))
            origin.append((index, patch.y, patch.x))
    return {"windows": np.stack(windows), "inside": np.stack(inside),
            "origin": np.asarray(origin, dtype=np.int32), "images": np.asarray([p.name for p in paths])}


def write_patch_file(cfg: TrainConfig, prompt: PromptBuilder, out: Path) -> dict:
    """Cut the recipe's train/val patches into `out` (refuses to overwrite); returns its summary."""
    out = Path(out)
    if out.exists():
        raise DataError(f"{out} exists; not overwriting it (delete it or name another data.patch_file)")
    train_paths, val_paths = split_images(cfg.data, cfg.seed)
    splits = {"train": cut(train_paths, prompt, cfg.data.patches_per_image, cfg.seed),
              "val": cut(val_paths, prompt, cfg.data.val_patches_per_image, cfg.seed + 1)}
    meta = {k: getattr(prompt.spec, k) for k in GEOMETRY} | {"seed": cfg.seed}
    arrays = {f"{split}_{k}": v for split, parts in splits.items() for k, v in parts.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "xb") as f:
        np.savez_compressed(f, meta=np.asarray(json.dumps(meta)), **arrays)
    return {"patch_file": str(out), "train_patches": len(splits["train"]["windows"]),
            "val_patches": len(splits["val"]["windows"]), "mib": round(out.stat().st_size / 2**20, 2)}


class PatchFile(torch.utils.data.Dataset):
    """One split of a patch file as (input_ids, loss_mask) items, like data.patch_dataset's."""

    def __init__(self, path: Path, split: str, prompt: PromptBuilder):
        path = Path(path)
        if not path.is_file():
            raise DataError(f"data.patch_file={path}: no such file (make it with "
                            "python write_patch_file.py recipe=NAME data.patch_file=PATH)")
        try:
            with np.load(path) as data:
                meta = json.loads(str(data["meta"]))
                self.windows, self.inside = data[f"{split}_windows"], data[f"{split}_inside"]
                self.origin, self.images = data[f"{split}_origin"], data[f"{split}_images"]
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"data.patch_file={path}: not a pixlm patch file ({err})") from None
        wanted = {k: getattr(prompt.spec, k) for k in GEOMETRY}
        if {k: meta.get(k) for k in GEOMETRY} != wanted:
            raise DataError(f"data.patch_file={path} was cut for {dict((k, meta.get(k)) for k in GEOMETRY)}, "
                            f"the recipe's prompt wants {wanted}")
        self.prompt, self.rows = prompt, prompt.spec.context_rows

    def __len__(self) -> int:
        return len(self.windows)

    def context(self, i: int) -> np.ndarray:
        """The context array of item i, FILL outside the image (as prompt.context gives it)."""
        context = self.windows[i, :self.rows].astype(np.int16)
        context[~self.inside[i]] = FILL
        return context

    def patch(self, i: int) -> np.ndarray:
        s = self.prompt.spec
        return self.windows[i, self.rows:, s.context_margin:s.context_margin + s.patch_width].reshape(-1)

    def __getitem__(self, i: int) -> dict:
        prefix = self.prompt.prefix(self.context(i))
        ids = np.concatenate([prefix, self.prompt.vocab.encode(self.patch(i))])
        mask = np.zeros(len(ids), dtype=np.int8)
        mask[len(prefix):] = 1
        return {"input_ids": torch.from_numpy(ids), "loss_mask": torch.from_numpy(mask)}


def main(cfg: TrainConfig) -> dict:
    from trainer.models.pixel_lm import load_tokenizer
    from trainer.tokenize.vocab import build_pixel_vocab

    if not cfg.data.patch_file:
        raise DataError("name the file to write: data.patch_file=PATH")
    tokenizer = load_tokenizer(cfg.model)
    prompt = PromptBuilder(cfg.prompt, tokenizer, build_pixel_vocab(tokenizer, cfg.model.pixel_vocab))
    return write_patch_file(cfg, prompt, Path(cfg.data.patch_file))

"""The datasets a recipe trains on: patches cut from its image folders (trainer.train.data), or a
preprocessed patch file (trainer.train.patch_file) when `data.patch_file` names one."""

from pathlib import Path

from trainer.config import DataConfig
from trainer.tokenize.prompt import PromptBuilder
from trainer.train.data import cache_root, patch_dataset, split_images
from trainer.train.patch_file import PatchFile


def build_datasets(cfg: DataConfig, prompt: PromptBuilder, seed: int):
    """(train, val) patch datasets and the image lists they came from."""
    if cfg.patch_file:
        train, val = (PatchFile(Path(cfg.patch_file), split, prompt) for split in ("train", "val"))
        return train, val, {"train_images": train.images.tolist(), "val_images": val.images.tolist(),
                            "patch_file": cfg.patch_file}
    train_paths, val_paths = split_images(cfg, seed)
    cache = cache_root(cfg) / "patches"
    train = patch_dataset(train_paths, prompt, cfg.patches_per_image, seed, cache, "train")
    val = patch_dataset(val_paths, prompt, cfg.val_patches_per_image, seed + 1, cache, "val")
    return train, val, {"train_images": [p.name for p in train_paths], "val_images": [p.name for p in val_paths]}

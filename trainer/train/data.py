"""Image folders -> random patch crops with their context -> token ids + loss mask (`datasets`).

Where images come from, in order: the folders a recipe names (`data.train_dirs`, one or many:
CLIC, DIV2K, your own); "default" = `$PIXLM_DATA/photos` (PIXLM_DATA defaults to
`../shared/data` beside the repo) when it holds images, else a handful of real photos shipped
inside scikit-image's wheel, so a fresh offline machine still trains. The Kodak set is the
benchmark and is never a default.

Patches are built with `datasets.map` into an Arrow file named by a fingerprint of everything
that shapes them (image bytes, prompt, vocabulary, counts, seed): a second run with the same
inputs loads the file instead of rebuilding. The validation split is by image, never by patch.
"""

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from trainer.config import DataConfig
from trainer.paths import repo_root
from trainer.tokenize.pixels import crop_positions
from trainer.images.files import image_files, load_image
from trainer.tokenize.prompt import PromptBuilder

log = logging.getLogger(__name__)
EMBEDDED = ("astronaut", "chelsea", "coffee", "immunohistochemistry", "motorcycle_left", "motorcycle_right")
DATASET_VERSION = 1  # bump when the meaning of a cached patch file changes


class DataError(ValueError):
    pass


def data_root() -> Path:
    """Root of the shared image folders: $PIXLM_DATA, else ../shared/data beside the repo."""
    return Path(os.environ.get("PIXLM_DATA") or repo_root().parent / "shared" / "data")


def cache_root(cfg: DataConfig) -> Path:
    return Path(cfg.cache_dir or os.environ.get("PIXLM_CACHE") or Path.home() / ".cache" / "pixlm").expanduser()


def embedded_photos(cache: Path) -> list[Path]:
    """Real photos from scikit-image's wheel, written once as PNG (lossless sources only)."""
    try:
        import skimage.data
    except ImportError:
        raise DataError("no image folder found and scikit-image is not installed for the embedded "
                        "photos: pip install scikit-image, or set data.train_dirs=[/your/images]") from None
    from PIL import Image

    folder = cache / "embedded"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in EMBEDDED:
        path = folder / f"{name}.png"
        if not path.is_file():
            if name.startswith("motorcycle"):
                left, right, _ = skimage.data.stereo_motorcycle()
                array = left if name.endswith("left") else right
            else:
                array = getattr(skimage.data, name)()
            Image.fromarray(array).save(path)
        paths.append(path)
    return paths


def resolve_images(cfg: DataConfig) -> list[Path]:
    """Every image path the recipe's train_dirs name, sorted, duplicates removed."""
    paths = []
    for entry in cfg.train_dirs:
        if entry == "default":
            shared = data_root() / "photos"
            found = image_files(shared) if shared.is_dir() else []
            paths += found or embedded_photos(cache_root(cfg))
        elif entry == "embedded":
            paths += embedded_photos(cache_root(cfg))
        else:
            folder = Path(entry).expanduser()
            if not folder.is_dir():
                raise DataError(f"data.train_dirs: {folder} is not a folder")
            found = image_files(folder)
            if not found:
                raise DataError(f"data.train_dirs: {folder} holds no images (png, jpg, webp, tif, bmp)")
            if "kodak" in str(folder).lower():
                log.warning("training on %s: Kodak is the benchmark; results on it are no longer honest", folder)
            paths += found
    paths = sorted(set(paths))
    return paths[:cfg.max_images] if cfg.max_images else paths


def split_images(cfg: DataConfig, seed: int) -> tuple[list[Path], list[Path]]:
    """The recipe's images split into (train, val). When the default data falls back to the six
    photos shipped in scikit-image (no ../shared), one is held out, not data.val_images: holding
    out four would leave two to train on."""
    paths = resolve_images(cfg)
    val_images = cfg.val_images
    if all(p.parent.name == "embedded" and p.stem in EMBEDDED for p in paths) and val_images > 1:
        log.warning("no image folder found: training on %d photos shipped in scikit-image, 1 held out for "
                    "validation (point data.train_dirs or PIXLM_DATA at your images for real training)", len(paths) - 1)
        val_images = 1
    return split_by_image(paths, val_images, seed)


def split_by_image(paths: list[Path], val_images: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Seeded split of whole images: no image has patches in both sets."""
    if not 0 < val_images < len(paths):
        raise DataError(f"need more images than data.val_images={val_images}; found {len(paths)}")
    order = np.random.default_rng(seed).permutation(len(paths))
    val = sorted(paths[i] for i in order[:val_images])
    return sorted(set(paths) - set(val)), val


def fingerprint(paths: list[Path], prompt: PromptBuilder, per_image: int, seed: int) -> str:
    digest = hashlib.sha256()
    meta = {"version": DATASET_VERSION, "per_image": per_image, "seed": seed, "fill": prompt.fill_id,
            "prompt": prompt.spec.__dict__, "vocab": list(prompt.vocab.token_ids),
            "prefix": [prompt.prefix_length(c) for c in (1, 3)]}
    digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for path in paths:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:20]


def patch_dataset(paths: list[Path], prompt: PromptBuilder, per_image: int, seed: int, cache: Path,
                  split: str):
    """A `datasets.Dataset` of input_ids (int32) and loss_mask (int8), cached by fingerprint."""
    import datasets

    key = fingerprint(paths, prompt, per_image, seed)
    cache.mkdir(parents=True, exist_ok=True)
    spec = prompt.spec

    def expand(batch):
        out = {"input_ids": [], "loss_mask": [], "image": []}
        for path in batch["path"]:
            image = load_image(path)
            for patch in crop_positions(image.shape, spec.patch_height, spec.patch_width, per_image, seed, Path(path).name):
                ids, n_prefix = prompt.sequence(image, patch)
                mask = np.zeros(len(ids), dtype=np.int8)
                mask[n_prefix:] = 1
                out["input_ids"].append(ids.astype(np.int32))
                out["loss_mask"].append(mask)
                out["image"].append(Path(path).name)
        return out

    features = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32")),
                                  "loss_mask": datasets.Sequence(datasets.Value("int8")),
                                  "image": datasets.Value("string")})
    source = datasets.Dataset.from_dict({"path": [str(p) for p in paths]})
    built = source.map(expand, batched=True, batch_size=1, remove_columns=["path"], features=features,
                       cache_file_name=str(cache / f"patches-{split}-{key}.arrow"), new_fingerprint=key,
                       desc=f"{split} patches")
    return built.with_format("torch", columns=["input_ids", "loss_mask"])


def collate(examples: list[dict], pad_id: int) -> dict:
    """Stack sequences; pads (masked out of loss and attention) only if lengths differ."""
    length = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    attention = torch.zeros((len(examples), length), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n], mask[i, :n], attention[i, :n] = e["input_ids"], e["loss_mask"], 1
    batch = {"input_ids": ids, "loss_mask": mask}
    if not bool(attention.all()):
        batch["attention_mask"] = attention
    return batch

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2`: one torch thread per worker (two would oversubscribe
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the cores, and OpenMP's waiting threads slow both ~10x)

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.config import DataConfig
from trainer.train.data import resolve_images

TINY_LLAMA = ["model.base=config", "model.tokenizer=bytes", "model.config.hidden_size=64",
              "model.config.intermediate_size=128", "model.config.num_hidden_layers=2",
              "model.config.num_attention_heads=4", "model.config.num_key_value_heads=4"]
SMALL_PROMPT = ["prompt.patch_height=8", "prompt.patch_width=8", "prompt.context_rows=1", "prompt.context_margin=4",
                "prompt.instruction=px"]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Tests that change torch's thread count must not leak it into later tests."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    """Real photos shipped in scikit-image (never Kodak): the same on every machine, with or without
    ../shared, so every threshold in the suite holds on a fresh clone too."""
    return resolve_images(DataConfig(train_dirs=["embedded"]))


@pytest.fixture(scope="session")
def crop_dir(tmp_path_factory) -> Path:
    """Six 64x48 real-photo crops in a folder of their own (fast to train on). Always from the photos
    shipped in scikit-image, so the training tests see the same data with or without ../shared."""
    folder = tmp_path_factory.mktemp("crops")
    for i, path in enumerate(resolve_images(DataConfig(train_dirs=["embedded"]))[:6]):
        array = np.asarray(Image.open(path).convert("RGB"))
        y, x = array.shape[0] // 2, array.shape[1] // 2
        Image.fromarray(array[y:y + 48, x:x + 64]).save(folder / f"crop{i}.png")
    return folder


@pytest.fixture
def tiny_overrides(crop_dir, tmp_path) -> list[str]:
    """Overrides that turn the quickstart recipe into a seconds-long run on the crops."""
    return TINY_LLAMA + SMALL_PROMPT + [
        f"output_dir={tmp_path / 'run'}", f"data.train_dirs=[{crop_dir}]", "data.val_images=2",
        "data.patches_per_image=16", "data.val_patches_per_image=8", f"data.cache_dir={tmp_path / 'cache'}",
        "batch_size=8", "warmup_steps=2", "log_every=2", "eval_every=100", "save_every=100"]


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory, crop_dir) -> Path:
    """A tiny model trained for a few seconds on real photo crops: train.py's final/ folder."""
    from trainer.config import load_recipe
    from trainer.train.loop import train

    root = tmp_path_factory.mktemp("teacher")
    cfg = load_recipe("quickstart", TINY_LLAMA + SMALL_PROMPT + [
        f"output_dir={root / 'run'}", f"data.train_dirs=[{crop_dir}]", "data.val_images=2",
        "data.patches_per_image=16", f"data.cache_dir={root / 'cache'}", "max_steps=30", "lr=3e-3",
        "eval_every=100", "save_every=100", "log_every=10"])
    train(cfg)
    return root / "run" / "final"


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory, teacher_dir) -> Path:
    """That tiny model exported as a codec bundle (fp32, 16-bit probability tables)."""
    from trainer.export import export_bundle

    return export_bundle(teacher_dir, tmp_path_factory.mktemp("bundle") / "tiny", precision=16).path

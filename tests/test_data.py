import numpy as np
import pytest
from PIL import Image

from trainer.config import DataConfig, PromptConfig
from trainer.train.data import DataError, collate, embedded_photos, resolve_images, split_by_image
from trainer.train.datasets import build_datasets
from trainer.models.pixel_lm import byte_tokenizer
from trainer.tokenize.pixels import crop_positions
from trainer.tokenize.prompt import PromptBuilder
from trainer.tokenize.vocab import build_pixel_vocab


@pytest.fixture(scope="module")
def prompt():
    tokenizer = byte_tokenizer()
    spec = PromptConfig(patch_height=8, patch_width=8, context_rows=1, context_margin=4, instruction="px")
    return PromptBuilder(spec, tokenizer, build_pixel_vocab(tokenizer))


def test_split_is_by_image_and_seeded(crop_dir, prompt, tmp_path):
    cfg = DataConfig(train_dirs=[str(crop_dir)], val_images=2, patches_per_image=5, val_patches_per_image=3,
                     cache_dir=str(tmp_path))
    train, val, split = build_datasets(cfg, prompt, seed=0)
    assert len(split["val_images"]) == 2 and not set(split["train_images"]) & set(split["val_images"])
    assert len(train) == 4 * 5 and len(val) == 2 * 3
    assert set(train.with_format(None)["image"]) == set(split["train_images"])
    again = split_by_image(resolve_images(cfg), 2, seed=0)[1]
    assert [p.name for p in again] == split["val_images"]


def test_examples_are_token_ids_with_patch_only_loss_mask(crop_dir, prompt, tmp_path):
    cfg = DataConfig(train_dirs=[str(crop_dir)], val_images=1, patches_per_image=2, cache_dir=str(tmp_path))
    train, _, _ = build_datasets(cfg, prompt, seed=0)
    n_prefix = prompt.prefix_length(3)
    names = train.with_format(None)["image"]
    assert len(train) == len(names) == 5 * 2
    for i, name in enumerate(names):
        example = train[i]
        assert example["input_ids"].shape[0] == n_prefix + 8 * 8 * 3
        assert example["loss_mask"][:n_prefix].sum() == 0 and example["loss_mask"][n_prefix:].all()
        values = prompt.vocab.decode(example["input_ids"][n_prefix:].numpy())  # patch tokens decode to pixels
        assert values.dtype == np.uint8
        # ... to the pixels of an 8x8 window of the example's image, rows top-down, RGB interleaved:
        # read here with PIL and searched over every position, not cut by the pipeline's own code.
        pixels = np.asarray(Image.open(crop_dir / name).convert("RGB"))
        windows = np.lib.stride_tricks.sliding_window_view(pixels, (8, 8, 3))[:, :, 0]
        found = (windows == values.reshape(8, 8, 3)).all(axis=(2, 3, 4))
        assert found.any(), f"example {i}: its patch tokens are not the pixels of any 8x8 window of {name}"
        # the window the pipeline says it cut (seeded per image) is one of them
        patch = crop_positions(pixels.shape, 8, 8, cfg.patches_per_image, 0, name)[i % cfg.patches_per_image]
        assert found[patch.y, patch.x]


def test_second_build_loads_the_cache_and_changes_invalidate_it(crop_dir, prompt, tmp_path):
    cfg = DataConfig(train_dirs=[str(crop_dir)], val_images=1, patches_per_image=2, cache_dir=str(tmp_path))
    first, _, _ = build_datasets(cfg, prompt, seed=0)
    files = sorted((tmp_path / "patches").glob("*.arrow"))
    assert len(files) == 2
    second, _, _ = build_datasets(cfg, prompt, seed=0)
    assert second.cache_files[0]["filename"] == first.cache_files[0]["filename"]
    assert sorted((tmp_path / "patches").glob("*.arrow")) == files  # nothing rebuilt
    build_datasets(DataConfig(**{**cfg.__dict__, "patches_per_image": 3}), prompt, seed=0)
    assert len(list((tmp_path / "patches").glob("*.arrow"))) == 3  # new train fingerprint, same val


def test_default_is_shared_photos_or_embedded_never_kodak(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXLM_DATA", str(tmp_path / "nowhere"))
    paths = resolve_images(DataConfig(cache_dir=str(tmp_path)))
    assert {p.stem for p in paths} == {"astronaut", "chelsea", "coffee", "immunohistochemistry",
                                       "motorcycle_left", "motorcycle_right"}
    assert all(Image.open(p).mode == "RGB" for p in paths)
    monkeypatch.delenv("PIXLM_DATA")
    assert not any("kodak" in str(p).lower() for p in resolve_images(DataConfig(cache_dir=str(tmp_path))))


def test_embedded_photos_are_written_once(tmp_path):
    first = embedded_photos(tmp_path)
    stamps = [p.stat().st_mtime_ns for p in first]
    assert [p.stat().st_mtime_ns for p in embedded_photos(tmp_path)] == stamps


def test_empty_or_missing_folders_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="holds no images"):
        resolve_images(DataConfig(train_dirs=[str(tmp_path / "empty")]))
    with pytest.raises(DataError, match="not a folder"):
        resolve_images(DataConfig(train_dirs=[str(tmp_path / "missing")]))
    with pytest.raises(DataError, match="val_images"):
        split_by_image([tmp_path / "a.png"], 1, 0)


def test_collate_pads_only_when_lengths_differ():
    import torch
    a = {"input_ids": torch.arange(5), "loss_mask": torch.tensor([0, 0, 1, 1, 1])}
    b = {"input_ids": torch.arange(3), "loss_mask": torch.tensor([0, 1, 1])}
    assert "attention_mask" not in collate([a, a], pad_id=9)
    batch = collate([a, b], pad_id=9)
    assert batch["input_ids"][1].tolist() == [0, 1, 2, 9, 9]
    assert batch["loss_mask"][1].tolist() == [0, 1, 1, 0, 0] and batch["attention_mask"][1].tolist() == [1, 1, 1, 0, 0]


def test_the_embedded_fallback_holds_out_one_photo_not_four(tmp_path):
    """Without ../shared the default data is scikit-image's six photos: train on five (issue 13)."""
    from trainer.train.data import split_images

    train, val = split_images(DataConfig(train_dirs=["embedded"], val_images=4, cache_dir=str(tmp_path)), seed=0)
    assert (len(train), len(val)) == (5, 1)
    folder = tmp_path / "mine"
    folder.mkdir()
    for path in train + val:
        (folder / path.name).write_bytes(path.read_bytes())
    train, val = split_images(DataConfig(train_dirs=[str(folder)], val_images=4), seed=0)
    assert (len(train), len(val)) == (2, 4)  # a user's own folder keeps data.val_images

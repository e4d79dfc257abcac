"""The LM-teacher path of issue 11, on the CPU: the patch file, slices, the teacher cache, the
context student distilled from the cache, and the device checks of the LM codec."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import SMALL_PROMPT, TINY_LLAMA
from trainer.config import ContextTrainConfig, RecipeError, load_recipe
from trainer.models.pixel_lm import PixelLM
from trainer.train.data import DataError
from trainer.train.datasets import build_datasets
from trainer.train.loop import train
from trainer.train.patch_file import PatchFile, write_patch_file
from trainer.train.teacher_cache import CacheError, cached_kl_bits, load_cache, target_log_probs, write_cache
from trainer.train.kd import kl_bits


def lm_recipe(tmp_path, crop_dir, *extra):
    return load_recipe("quickstart", TINY_LLAMA + SMALL_PROMPT + [
        f"output_dir={tmp_path / 'run'}", f"data.train_dirs=[{crop_dir}]", "data.val_images=2",
        "data.patches_per_image=6", "data.val_patches_per_image=3", f"data.cache_dir={tmp_path / 'cache'}",
        "batch_size=4", "warmup_steps=1", "log_every=1", "eval_every=100", "save_every=100", *extra])


@pytest.fixture(scope="module")
def patch_file(tmp_path_factory, crop_dir, teacher_dir) -> Path:
    tmp = tmp_path_factory.mktemp("patches")
    cfg = lm_recipe(tmp, crop_dir)
    summary = write_patch_file(cfg, PixelLM.from_pretrained(teacher_dir).prompt, tmp / "patches.npz")
    assert (summary["train_patches"], summary["val_patches"]) == (4 * 6, 2 * 3)
    return tmp / "patches.npz"


def test_patch_file_items_are_the_token_ids_the_image_pipeline_makes(crop_dir, teacher_dir, patch_file, tmp_path):
    cfg = lm_recipe(tmp_path, crop_dir)
    prompt = PixelLM.from_pretrained(teacher_dir).prompt
    from_images = build_datasets(cfg.data, prompt, cfg.seed)
    cfg.data.patch_file = str(patch_file)
    from_file = build_datasets(cfg.data, prompt, cfg.seed)
    assert from_file[2]["train_images"] == from_images[2]["train_images"]
    for a, b in zip(from_images[:2], from_file[:2]):
        assert len(a) == len(b)
        for i in range(len(a)):
            assert torch.equal(a[i]["input_ids"].long(), b[i]["input_ids"])
            assert torch.equal(a[i]["loss_mask"].long(), b[i]["loss_mask"].long())
    edge = [i for i in range(len(from_file[0])) if not from_file[0].inside[i].all()]
    assert edge, "some patches must touch the image border (FILL context) for this test to mean anything"


def test_patch_file_refusals(crop_dir, teacher_dir, patch_file, tmp_path):
    prompt = PixelLM.from_pretrained(teacher_dir).prompt
    before = patch_file.read_bytes()
    with pytest.raises(DataError, match="not overwriting"):
        write_patch_file(lm_recipe(tmp_path, crop_dir), prompt, patch_file)
    assert patch_file.read_bytes() == before
    with pytest.raises(DataError, match="no such file"):
        PatchFile(tmp_path / "missing.npz", "train", prompt)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a pixlm patch file"):
        PatchFile(tmp_path / "junk.npz", "train", prompt)
    other = load_recipe("quickstart", TINY_LLAMA + SMALL_PROMPT + ["prompt.context_margin=2"])
    from trainer.tokenize.prompt import PromptBuilder

    with pytest.raises(DataError, match="was cut for"):
        PatchFile(patch_file, "train", PromptBuilder(other.prompt, prompt_tokenizer(teacher_dir), prompt.vocab))


def test_write_patch_file_script(crop_dir, tmp_path):
    """`python write_patch_file.py recipe=... data.patch_file=OUT`: the file, a summary line; without
    data.patch_file one clear line and exit code 2."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    overrides = TINY_LLAMA + SMALL_PROMPT + [
        f"data.train_dirs=[{crop_dir}]", "data.val_images=2", "data.patches_per_image=6",
        "data.val_patches_per_image=3", f"data.cache_dir={tmp_path / 'cache'}"]

    def script(*extra):
        return subprocess.run([sys.executable, "write_patch_file.py", "recipe=quickstart", *overrides, *extra],
                              cwd=root, capture_output=True, text=True, timeout=600)

    missing = script()
    assert missing.returncode == 2 and missing.stderr.strip().splitlines()[-1].startswith("error: name the file")
    done = script(f"data.patch_file={tmp_path / 'p.npz'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "train_patches=24" in done.stdout and (tmp_path / "p.npz").is_file()


def prompt_tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


class StepClock:
    """A fake `time.perf_counter`: it stands still, except that every optimizer step takes `seconds`.
    A slice then ends after a number of steps that depends on nothing but the recipe."""

    def __init__(self, seconds: float):
        self.now, self.seconds = 1000.0, seconds

    def __call__(self) -> float:
        return self.now

    def step(self, *_) -> None:
        self.now += self.seconds


def test_training_from_a_patch_file_in_slices_resumes_to_the_end(crop_dir, patch_file, tmp_path, monkeypatch):
    import time

    from torch.optim.optimizer import register_optimizer_step_post_hook

    cfg = lm_recipe(tmp_path, crop_dir, f"data.patch_file={patch_file}", "max_steps=4", "slice_minutes=1")
    clock = StepClock(seconds=40)
    hook = register_optimizer_step_post_hook(clock.step)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(time, "perf_counter", clock)
            first = train(cfg)
    finally:
        hook.remove()
    assert clock.now == 1000 + 2 * 40  # two optimizer steps ran in the slice, no more
    # 40 s after step 1 is within the minute; 80 s after step 2 is past it: the slice ends after step 2
    assert first["finished"] is False and first["steps"] == 2
    assert not (tmp_path / "run" / "final").exists()
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["checkpoint-0000002"]
    cfg = lm_recipe(tmp_path, crop_dir, f"data.patch_file={patch_file}", "max_steps=4", "resume=true")
    done = train(cfg)
    assert done["steps"] == 4 and (tmp_path / "run" / "final" / "metrics.json").is_file()
    assert json.loads((tmp_path / "run" / "final" / "metrics.json").read_text())["patch_file"] == str(patch_file)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, teacher_dir, patch_file) -> Path:
    teacher = PixelLM.from_pretrained(teacher_dir).eval()
    out = tmp_path_factory.mktemp("cache")
    train_split = PatchFile(patch_file, "train", teacher.prompt)
    # Shards of ~2 patches each: the writer must split and the reader concatenate in order.
    shards = write_cache(teacher, train_split, out, top_k=8, batch_size=3, max_mib=2 * 8 * 8 * 3 * 8 * 2 / 2**20,
                         meta={"patch_height": 8, "patch_width": 8})
    assert len(shards) > 2
    return out


def test_teacher_cache_holds_the_teachers_top_values_and_code_lengths(teacher_dir, patch_file, cache_dir):
    teacher = PixelLM.from_pretrained(teacher_dir).eval()
    train_split = PatchFile(patch_file, "train", teacher.prompt)
    cache = load_cache(cache_dir)
    assert len(cache["origin"]) == len(train_split) and np.array_equal(cache["origin"], train_split.origin)
    item = train_split[5]
    with torch.no_grad():
        log_probs = teacher(item["input_ids"][None], item["loss_mask"][None])["log_probs"]
    top = log_probs.topk(8, dim=-1)
    values = torch.from_numpy(cache["values"][5]).long()
    assert torch.equal(values, top.indices)
    bits = torch.from_numpy(cache["nlp16"][5]).float() / 16
    assert torch.allclose(bits, (-top.values / np.log(2)).clamp(max=255 / 16), atol=1 / 32 + 1e-6)
    with pytest.raises(CacheError, match="not overwriting"):
        write_cache(teacher, train_split, cache_dir)


def test_cached_kl_equals_the_full_kl_of_the_reconstructed_target():
    torch.manual_seed(0)
    teacher = torch.log_softmax(torch.randn(6, 256) * 3, -1)
    student = torch.log_softmax(torch.randn(6, 256), -1, )
    top = teacher.topk(8, -1)
    nlp = torch.clamp(torch.round(-top.values / np.log(2) * 16), 0, 255).to(torch.uint8)
    values = top.indices.to(torch.uint8)
    top_logp, other = target_log_probs(values, nlp)
    full = other[:, None].expand(6, 256).clone().scatter_(1, values.long(), top_logp)
    assert torch.allclose(full.exp().sum(-1), torch.ones(6), atol=1e-5)
    assert torch.allclose(cached_kl_bits(values, nlp, student), kl_bits(full, student, 1.0), atol=1e-4)


def context_recipe(tmp_path, crop_dir, *extra):
    return load_recipe("context_student", [
        "model.hidden=32", "model.layers=2", "model.head_hidden=16", "model.mixtures=3", "batch_crops=2",
        "crop_size=16", "val_crop_size=24", "val_crops_per_image=1", "mixed_precision=no", "log_every=5",
        "warmup_steps=2", "lr=3e-3", "max_steps=6", "eval_every=100", "save_every=100",
        f"output_dir={tmp_path / 'run'}", f"data.train_dirs=[{crop_dir}]", "data.val_images=2", *extra],
        schema=ContextTrainConfig)


def test_context_student_learns_from_the_cache_and_checks_it(crop_dir, cache_dir, tmp_path):
    """Trained with the cache (kd_ratio=0.5), the student's loss on the cached patches falls below its
    step-0 value, and it comes closer to the cached teacher than the same student trained on the
    same batches without the cache (kd_ratio=0): what moved it there is the cache. Seeded: exact
    numbers, the same on every run."""
    from accelerate.utils import set_seed

    from trainer.images.files import load_image
    from trainer.models.context import ContextModel, ImageStack
    from trainer.train.context import CachedPatches, evaluate, load_images, train_context, val_windows
    from trainer.train.data import split_images

    cfg = context_recipe(tmp_path, crop_dir, f"teacher_cache={cache_dir}", "kd_ratio=0.5", "seed=0")
    metrics = train_context(cfg)
    assert metrics["steps"] == 6 and metrics["teacher_cache"]["patches"] == 24
    assert np.isfinite(metrics["val_bpsp"])
    without = context_recipe(tmp_path / "ce", crop_dir, f"teacher_cache={cache_dir}", "kd_ratio=0", "seed=0")
    assert train_context(without)["steps"] == 6

    set_seed(cfg.seed)  # the student at step 0, as train_context builds it
    untrained = ContextModel(cfg.model).eval()
    train_paths, val_paths = split_images(cfg.data, cfg.seed)
    val = val_windows(load_images(val_paths, cfg.model.channels), untrained, cfg.val_crops_per_image, cfg.val_crop_size)
    assert evaluate(untrained, *val) == metrics["initial_val_bpsp"], "not the student train_context started from"
    stack = ImageStack([load_image(p) for p in train_paths], untrained)
    cached = CachedPatches(cfg, train_paths, val_paths, "cpu")
    contexts, targets, taught = cached.batch(untrained, stack, 4 * 24 * 64, np.random.default_rng(0))

    def scores(student) -> tuple[float, float]:
        """(the training loss, KL to the cached teacher) in bits on the cached patches."""
        with torch.no_grad():
            kl = cached.kl(student, contexts, targets, taught).item()
            return (1 - cfg.kd_ratio) * student(contexts, targets).mean().item() + cfg.kd_ratio * kl, kl

    loss_before, kl_before = scores(untrained)
    loss_after, kl_after = scores(ContextModel.from_pretrained(tmp_path / "run" / "final").eval())
    _, kl_without = scores(ContextModel.from_pretrained(tmp_path / "ce" / "run" / "final").eval())
    assert loss_after < loss_before - 0.1, (loss_before, loss_after)  # it learns: the loss it trains on falls
    assert kl_after < kl_before - 0.5 and kl_after < kl_without - 0.5, (kl_before, kl_after, kl_without)
    with pytest.raises(RecipeError, match="temperature=1"):
        train_context(context_recipe(tmp_path / "t", crop_dir, f"teacher_cache={cache_dir}", "temperature=2"))
    # Another split (val_images=1) puts cached images among the student's validation images: refused.
    with pytest.raises(RecipeError, match="validation images"):
        train_context(context_recipe(tmp_path / "v", crop_dir, f"teacher_cache={cache_dir}", "data.val_images=5"))
    with pytest.raises(CacheError, match="no cache"):
        train_context(context_recipe(tmp_path / "e", crop_dir, f"teacher_cache={tmp_path}"))


def test_cached_batches_are_the_patches_pixels_with_their_codec_contexts(crop_dir, cache_dir):
    from trainer.models.context import ContextModel, ImageStack
    from trainer.images.files import image_files, load_image
    from trainer.train.context import CachedPatches
    from trainer.train.data import split_images

    cfg = context_recipe(Path("/tmp"), crop_dir, f"teacher_cache={cache_dir}")
    train_paths, val_paths = split_images(cfg.data, cfg.seed)
    model = ContextModel(cfg.model)
    images = [load_image(p) for p in train_paths]
    stack = ImageStack(images, model)
    cached = CachedPatches(cfg, train_paths, val_paths, "cpu")
    contexts, targets, (values, nlp) = cached.batch(model, stack, 3 * 64, np.random.default_rng(1))
    assert len(targets) == 3 * 64 and values.shape == (3 * 64, 3, 8)
    cache = load_cache(cache_dir)
    pick = np.random.default_rng(1).integers(len(cache["origin"]), size=3)
    for n, i in enumerate(pick):
        name = cache["images"][cache["origin"][i, 0]]
        y, x = cache["origin"][i, 1:]
        truth = load_image(next(p for p in image_files(crop_dir) if p.name == name))[y:y + 8, x:x + 8]
        assert np.array_equal(targets[n * 64:(n + 1) * 64].numpy(), truth.reshape(64, 3))
        assert np.array_equal(values[n * 64:(n + 1) * 64].numpy(), cache["values"][i].reshape(64, 3, 8))
    canvas = model.pad(torch.from_numpy(images[0]))
    from trainer.models.context import pixel_grid

    ys, xs = pixel_grid(*images[0].shape[:2])
    assert contexts.shape[1] == model.context(canvas, ys[:1], xs[:1]).shape[1]


def test_lm_codec_refuses_devices_it_cannot_use(bundle_dir):
    from trainer.codec.registry import open_codec
    from trainer.codec.stream import CodecError

    if not torch.cuda.is_available():
        with pytest.raises(CodecError, match="no CUDA GPU"):
            open_codec(bundle_dir, device="cuda")
    context = Path(__file__).resolve().parents[1] / "checkpoints" / "pixlm-context-v5"
    with pytest.raises(CodecError, match="context bundles code on the CPU"):
        open_codec(context, device="cuda")

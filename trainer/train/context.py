"""Training of the causal-context student (trainer.models.context), driven by Accelerate.

Data: whole images padded once into a stack on the training device (context_model.ImageStack);
each step draws `batch_crops` random crops of `crop_size`^2 pixels and trains on every pixel of
them, with the contexts gathered on the device exactly as the codec gathers them. The same recipe
fits 2 CPU cores (all threads), one GPU (bf16, large batches) or several under Accelerate;
`slice_minutes` ends a run cleanly after that much wall time (state saved; rerun with
resume=true), so long runs go in slices. The crops of step s come from an RNG seeded by (seed, s, rank), so a
resumed run sees the same batches as an uninterrupted one without storing a data position.
Validation: fixed crops of whole held-out images (split by image, never by crop), bits summed
then divided once. Kodak is never a default here: it is the benchmark.

Distillation (`teacher=FOLDER`): a frozen context model with the same window (larger hidden,
layers or mixtures) teaches on the full 256-way distributions of every training subpixel, the
same quantity the codec codes with; loss = (1 - kd_ratio) * CE + kd_ratio * T^2 * KL(teacher_T ||
student_T), in bits. The student's val bpsp is measured exactly as without a teacher.

The loop (resume, logging, evaluation, checkpoints, slices, Ctrl-C) is trainer.train.skeleton's;
`train_context` states the data, one step and the evaluation.
"""

from pathlib import Path

import numpy as np
import torch

from trainer.config import ContextTrainConfig, RecipeError
from trainer.models.context import ContextModel, ImageStack, pixel_grid, scale
from trainer.train.data import DataError, split_images
from trainer.train.checkpointing import save_final
from trainer.train.kd import kl_bits
from trainer.train.skeleton import make_accelerator, make_optimizer, run_loop, update
from trainer.train.teacher_cache import cache_summary, cached_kl_bits, load_cache
from trainer.images.files import ImageModeError, load_image


def load_images(paths: list[Path], channels: int) -> list[np.ndarray]:
    images = [load_image(p) for p in paths]
    kept = [im for im in images if im.shape[2] == channels]
    if not kept:
        raise DataError(f"none of {len(paths)} images has {channels} channels")
    return kept


def val_windows(images: list[np.ndarray], model: ContextModel, per_image: int, size: int):
    """Fixed validation crops (a grid of positions per image): contexts and targets."""
    contexts, targets = [], []
    for image in images:
        h, w, _ = image.shape
        size_y, size_x = min(size, h), min(size, w)
        ys, xs = pixel_grid(size_y, size_x)
        for i in range(per_image):
            y, x = (h - size_y) * (i + 1) // (per_image + 1), (w - size_x) * (per_image - i) // (per_image + 1)
            crop = np.array(image[y:y + size_y, x:x + size_x])  # a writable copy for torch
            contexts.append(model.context(model.pad(torch.from_numpy(crop)), ys, xs))
            targets.append(torch.from_numpy(crop.reshape(-1, image.shape[2])))
    return torch.cat(contexts), torch.cat(targets)


@torch.no_grad()
def evaluate(model: ContextModel, contexts, targets, chunk: int = 65536) -> float:
    model.eval()
    device = next(model.parameters()).device
    bits = sum(model(contexts[i:i + chunk].to(device), targets[i:i + chunk].to(device)).double().sum().item()
               for i in range(0, len(targets), chunk))
    model.train()
    return bits / targets.numel()


def load_context_teacher(cfg: ContextTrainConfig, device) -> ContextModel | None:
    """The frozen teacher of `teacher=` (None without one); its window must be the student's, so
    both read the same contexts."""
    if not cfg.teacher or cfg.kd_ratio == 0:  # kd_ratio=0: the same recipe on the data alone (the A/B)
        return None
    try:
        teacher = ContextModel.from_pretrained(cfg.teacher)
    except (OSError, ValueError, KeyError) as err:
        raise RecipeError(f"teacher={cfg.teacher}: not a context model folder ({str(err).splitlines()[0]})") from None
    window = lambda c: (c.channels, c.rows_above, c.cols_side, c.cols_left)  # noqa: E731
    if window(teacher.config) != window(cfg.model):
        raise RecipeError(f"teacher={cfg.teacher}: its window (channels, rows_above, cols_side, cols_left) "
                          f"{window(teacher.config)} differs from the student's {window(cfg.model)}")
    return teacher.to(device).eval().requires_grad_(False)


def distillation_kl(teacher: ContextModel, student: ContextModel, contexts, targets, temperature: float):
    """Mean KL(teacher_T || student_T) in bits over every subpixel of the batch: the full 256-way
    distributions, each channel given the pixel's true earlier channels (as in coding)."""
    previous = scale(targets)
    with torch.no_grad():
        taught = teacher.features(contexts)
        teacher_log_probs = [teacher.log_probs(taught, c, previous[:, :c]) for c in range(targets.shape[1])]
    features = student.features(contexts)
    return torch.stack([kl_bits(teacher_log_probs[c], student.log_probs(features, c, previous[:, :c]), temperature)
                        for c in range(targets.shape[1])]).mean()


class CachedPatches:
    """The patches of an LM teacher's cache (trainer.train.teacher_cache) as the student's batches:
    every pixel of a patch with its context gathered from the image stack, as in coding, and the
    teacher's cached distribution of each of its subpixels."""

    def __init__(self, cfg: ContextTrainConfig, train_paths: list[Path], val_paths: list[Path], device):
        if cfg.teacher:
            raise RecipeError("name one teacher: teacher (a context model) or teacher_cache (an LM's cache)")
        if cfg.temperature != 1.0:
            raise RecipeError("a cached teacher is distilled at temperature=1 (its cached tables are at T=1)")
        cache = load_cache(Path(cfg.teacher_cache))
        names = [p.name for p in train_paths]
        held_out = sorted(set(cache["images"]) & {p.name for p in val_paths})
        if held_out:
            raise RecipeError(f"teacher_cache={cfg.teacher_cache} holds patches of validation images {held_out}")
        used = sorted(set(cache["origin"][:, 0].tolist()))
        missing = [cache["images"][i] for i in used if cache["images"][i] not in names]
        if missing:
            raise DataError(f"teacher_cache={cfg.teacher_cache}: its images {missing[:3]} are not among the training images")
        meta, channels = cache["meta"], cfg.model.channels
        self.height, self.width = meta["patch_height"], meta["patch_width"]
        stack_index = torch.tensor([names.index(n) if n in names else -1 for n in cache["images"]])
        origin = torch.from_numpy(cache["origin"].astype(np.int64))
        self.images, self.ys, self.xs = stack_index[origin[:, 0]].to(device), origin[:, 1].to(device), origin[:, 2].to(device)
        shape = (len(origin), self.height * self.width, channels, meta["top_k"])
        self.values = torch.from_numpy(cache["values"]).reshape(shape).to(device)
        self.nlp16 = torch.from_numpy(cache["nlp16"]).reshape(shape).to(device)
        self.summary = cache_summary(cache)

    def batch(self, model: ContextModel, stack: ImageStack, pixels: int, rng: np.random.Generator):
        """(contexts, targets, (values, nlp16) of each subpixel) of random whole cached patches."""
        count = max(1, pixels // (self.height * self.width))
        pick = torch.from_numpy(rng.integers(len(self.ys), size=count)).to(self.ys.device)
        dy, dx = (d.to(self.ys.device) for d in pixel_grid(self.height, self.width))
        ys, xs = (self.ys[pick, None] + dy).flatten(), (self.xs[pick, None] + dx).flatten()
        which = self.images[pick].repeat_interleave(self.height * self.width)
        taught = (self.values[pick].flatten(0, 1), self.nlp16[pick].flatten(0, 1))  # (pixels, C, k)
        return model.context(stack.canvas, ys, xs, which), stack.values[which, ys, xs], taught

    @staticmethod
    def kl(student: ContextModel, contexts, targets, taught) -> torch.Tensor:
        """Mean KL(cached teacher || student) in bits over every subpixel of the batch."""
        values, nlp16 = taught
        previous = scale(targets)
        features = student.features(contexts)
        return torch.stack([cached_kl_bits(values[:, c], nlp16[:, c], student.log_probs(features, c, previous[:, :c]))
                            for c in range(targets.shape[1])]).mean()


def train_context(cfg: ContextTrainConfig) -> dict:
    """Train a ContextModel; writes output_dir/final (config.json, model.safetensors, recipe, metrics)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    accelerator = make_accelerator(cfg)
    model = ContextModel(cfg.model)
    train_paths, val_paths = split_images(cfg.data, cfg.seed)
    try:
        kept = [(p, im) for p, im in zip(train_paths, map(load_image, train_paths)) if im.shape[2] == cfg.model.channels]
        if not kept:
            raise DataError(f"none of {len(train_paths)} training images has {cfg.model.channels} channels")
        train_paths, train_images = [p for p, _ in kept], [im for _, im in kept]  # the stack's order
        val_contexts, val_targets = val_windows(load_images(val_paths, cfg.model.channels), model,
                                                cfg.val_crops_per_image, cfg.val_crop_size)
    except ImageModeError as err:
        raise DataError(str(err)) from None
    small = min(min(im.shape[:2]) for im in train_images)
    if small < cfg.crop_size:
        raise DataError(f"crop_size={cfg.crop_size} is larger than a training image ({small} px)")
    stack = ImageStack(train_images, model, accelerator.device)
    del train_images
    teacher = load_context_teacher(cfg, accelerator.device)
    cached = CachedPatches(cfg, train_paths, val_paths, accelerator.device) if cfg.teacher_cache else None
    metrics = {"parameters": sum(p.numel() for p in model.parameters()), "train_images": len(stack.sizes),
               "val_images": len(val_paths), "val_subpixels": val_targets.numel()}
    if cached is not None:
        metrics["teacher_cache"] = {"path": cfg.teacher_cache, "kd_ratio": cfg.kd_ratio, **cached.summary}
    if teacher is not None:
        metrics["teacher"] = {"path": cfg.teacher, "kd_ratio": cfg.kd_ratio, "temperature": cfg.temperature,
                              "val_bpsp": evaluate(teacher, val_contexts, val_targets)}
    optimizer, scheduler = make_optimizer(list(model.parameters()), cfg)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    raw = accelerator.unwrap_model(model)

    def train_step(step: int) -> dict:
        rng = np.random.default_rng([cfg.seed, step, accelerator.process_index])
        if cached is None:
            contexts, targets = stack.crops(raw, cfg.batch_crops, cfg.crop_size, rng)
        else:  # as many pixels as the crops would hold, in whole cached patches
            contexts, targets, taught = cached.batch(raw, stack, cfg.batch_crops * cfg.crop_size ** 2, rng)
        with accelerator.autocast():
            loss_bits = model(contexts, targets)
            loss = loss_bits.mean()
            if cached is not None and cfg.kd_ratio > 0:
                kl = cached.kl(raw, contexts, targets, taught)
                loss = (1 - cfg.kd_ratio) * loss + cfg.kd_ratio * kl
            if teacher is not None:
                # The student's trunk runs a second time here (only forward() goes through
                # Accelerate's wrapper, which multi-GPU gradient sync needs); the 256-way
                # tables cost far more (context_distill A/B: ~3.5 s a step with them, ~0.3 s without).
                kl = distillation_kl(teacher, raw, contexts, targets, cfg.temperature)
                loss = (1 - cfg.kd_ratio) * loss + cfg.kd_ratio * cfg.temperature ** 2 * kl
        update(accelerator, loss, model.parameters(), optimizer, scheduler, cfg.max_grad_norm)
        return {"bits": loss_bits.detach().sum().item(), "subpixels": loss_bits.numel()}

    def scores() -> dict:
        return {"val/bpsp": evaluate(raw, val_contexts, val_targets)}

    if not run_loop(accelerator, cfg, metrics, scheduler, train_step, scores, rate="subpixels"):
        return {**metrics, "finished": False}
    out = Path(cfg.output_dir)
    save_final(accelerator, out, raw, cfg, metrics, f"export it with `pixlm export {out / 'final'} BUNDLE_DIR`")
    return metrics

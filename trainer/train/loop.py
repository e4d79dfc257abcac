"""The LM recipe (train.py, and distill.py through its plug-in points): a PixelLM trained on
patches, driven by Accelerate.

Accelerate places the model, accumulates gradients, applies mixed precision and saves/loads the
training state; the loop itself (resume, logging, evaluation, checkpoints, slices, Ctrl-C) is
trainer.train.skeleton's. This recipe states what is its own: the model and its patch batches,
the data position a state keeps (batches consumed), one step over grad_accum batches with
dropout seeded by the step, training states that hold only trained tensors, and the final folder.
"""

from functools import partial
from pathlib import Path

import torch
from accelerate import DataLoaderConfiguration
from accelerate.utils import DistributedType, set_seed
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from trainer.config import TrainConfig
from trainer.train.data import DataError, collate
from trainer.train.datasets import build_datasets
from trainer.models.pixel_lm import build_pixel_lm, count_parameters
from trainer.train.checkpointing import save_final
from trainer.train.skeleton import make_accelerator, make_optimizer, run_loop, update


def save_only_trainable(accelerator) -> None:
    """Make training states hold only trained tensors: a LoRA state is MBs, not the whole base model.

    The frozen base weights are rebuilt from the recipe at resume, so they need no copy per step.
    """
    def save(models, weights, _):
        for model, state in zip(models, weights):
            trained = {name for name, p in model.named_parameters() if p.requires_grad}
            for key in [k for k in state if k not in trained]:
                del state[key]

    def load(models, input_dir):
        for i, model in enumerate(models):
            state = load_file(Path(input_dir, "model.safetensors" if i == 0 else f"model_{i}.safetensors"))
            missing, unexpected = model.load_state_dict(state, strict=False)
            trained = {name for name, p in model.named_parameters() if p.requires_grad}
            if unexpected or trained & set(missing):
                raise ValueError(f"{input_dir}: training state does not match this recipe's model")
        models.clear()  # loaded here; Accelerate must not load them again (strictly)

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


@torch.no_grad()
def evaluate(model, loader, accelerator) -> float:
    """Validation bpsp: total bits / total subpixels over all val patches (never a mean of means)."""
    model.eval()
    bits = count = 0.0
    for batch in loader:
        out = model(**batch)
        seq_bits, seq_count = accelerator.gather_for_metrics((out["seq_bits"], out["seq_count"]))
        bits += seq_bits.double().sum().item()
        count += seq_count.double().sum().item()
    model.train()
    return bits / count


def default_build(cfg: TrainConfig):
    return build_pixel_lm(cfg.model, cfg.prompt, cfg.lora)


def default_loss(model, batch) -> dict:
    return model(**batch)


def default_evaluate(model, loader, accelerator) -> dict:
    return {"val/bpsp": evaluate(model, loader, accelerator)}


def train(cfg: TrainConfig, build_model=default_build, compute_loss=default_loss,
          evaluate_fn=default_evaluate) -> dict:
    """Train `build_model(cfg)` (a PixelLM) and save it to output_dir/final.

    Plug-in points (distillation uses them; train.py keeps the defaults):
    - `compute_loss(model, batch)` -> dict with "loss" (backward), "bits" and "count" (train/bpsp),
      and optionally "sums": {tag: tensor summed over the batch's subpixels}, logged as tag = sum / count;
    - `evaluate_fn(model, val_loader, accelerator)` -> {tag: value} with at least "val/bpsp"; every
      value is logged and kept in metrics (initial_* at step 0).
    Only the prepared model is saved in training states: anything else the hooks hold (a teacher)
    must be rebuilt by the caller at resume.
    """
    out = Path(cfg.output_dir)
    accelerator = make_accelerator(cfg, gradient_accumulation_steps=cfg.grad_accum,
                                   dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    model = build_model(cfg)
    with accelerator.main_process_first():
        train_set, val_set, split = build_datasets(cfg.data, model.prompt, cfg.seed)
    make_batch = partial(collate, pad_id=model.prompt.fill_id)
    train_loader = DataLoader(train_set, cfg.batch_size, shuffle=True, drop_last=True, collate_fn=make_batch,
                              num_workers=cfg.num_workers)
    val_loader = DataLoader(val_set, cfg.batch_size, collate_fn=make_batch, num_workers=cfg.num_workers)
    if len(train_loader) == 0:
        raise DataError(f"{len(train_set)} training patches make no batch of batch_size={cfg.batch_size}")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(params, cfg)
    metrics = {"initial_val_bpsp": None, "val_bpsp": None, **count_parameters(model), **split}
    model, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, scheduler)
    save_only_trainable(accelerator)
    position = {"batches_seen": 0}  # a resume restores it before the first step

    def batches():
        """Endless batches from position["batches_seen"]: the same order as an uninterrupted run."""
        epoch, offset = divmod(position["batches_seen"], len(train_loader))
        while True:
            train_loader.set_epoch(epoch)
            yield from accelerator.skip_first_batches(train_loader, offset) if offset else train_loader
            epoch, offset = epoch + 1, 0

    stream = batches()  # runs from the first step's next(), so from the position a resume restored

    def train_step(step: int) -> dict:
        step_batches = [next(stream) for _ in range(cfg.grad_accum)]
        # Dropout draws depend on (seed, step, rank) only, so a resumed run repeats them exactly
        # (a DataLoader iterator draws from the global RNG when created, and a resume creates one more).
        set_seed(cfg.seed + step, device_specific=True)
        sums = {"bits": 0.0, "subpixels": 0.0, "tokens": 0.0}
        for batch in step_batches:
            with accelerator.accumulate(model):
                result = compute_loss(model, batch)
                update(accelerator, result["loss"], params, optimizer, scheduler, cfg.max_grad_norm)
            sums["bits"] += result["bits"].item()
            sums["subpixels"] += result["count"].item()
            sums["tokens"] += batch["input_ids"].numel()
            for tag, value in result.get("sums", {}).items():
                sums[tag] = sums.get(tag, 0.0) + value.item()
        position["batches_seen"] += cfg.grad_accum
        return sums

    scores = partial(evaluate_fn, model, val_loader, accelerator)
    model.train()
    if not run_loop(accelerator, cfg, metrics, scheduler, train_step, scores, rate="tokens", position=position):
        return {**metrics, "finished": False}
    final_model = accelerator.unwrap_model(model)
    if accelerator.distributed_type == DistributedType.FSDP:
        # Sharded weights -> one full state dict on the main process, saved from a plain copy.
        # (Written for recipes/accelerate/fsdp.yaml; CI has no GPUs to run it.)
        state = accelerator.get_state_dict(model)
        if accelerator.is_main_process:
            final_model = build_model(cfg)
            final_model.load_state_dict(state)
    save_final(accelerator, out, final_model, cfg, metrics,
               f"training states in {out / 'checkpoints'}, tensorboard logs in {out / 'tensorboard'}")
    accelerator.wait_for_everyone()
    return metrics

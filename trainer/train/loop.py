"""The training loop: one readable function, driven by Accelerate.

Accelerate places the model, accumulates gradients, applies mixed precision, logs to
tensorboard and saves/loads the full training state. Each state goes to its own
`checkpoints/checkpoint-STEP/` folder with a `trainer_state.json` (step and number of batches
consumed) written last, so a resume never trusts a half-written state and never depends on
Accelerate's own iteration counter (which can resume at the wrong step).
"""

import json
import time
from functools import partial
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import DistributedType, set_seed
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from trainer.config import TrainConfig, flat_dict
from trainer.train.data import DataError, collate
from trainer.train.datasets import build_datasets
from trainer.models.pixel_lm import build_pixel_lm, count_parameters
from trainer.train.checkpointing import STATE_FILE, find_resume, lr_lambda, save_checkpoint, save_final

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


def metric_name(tag: str) -> str:
    return tag.replace("/", "_")  # "val/bpsp" -> "val_bpsp"


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
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum, mixed_precision=cfg.mixed_precision,
                              log_with="tensorboard", project_dir=str(out),
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    set_seed(cfg.seed)
    torch.set_flush_denormal(True)  # tiny Adam states otherwise slow CPU steps down 2x as training goes on
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
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_lambda, cfg=cfg))
    sizes = count_parameters(model)
    model, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, scheduler)
    accelerator.init_trackers("tensorboard", config=flat_dict(cfg))
    save_only_trainable(accelerator)

    step = batches_seen = 0
    metrics = {"initial_val_bpsp": None, "val_bpsp": None, **sizes, **split}
    checkpoint = find_resume(cfg.resume, out)
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / STATE_FILE).read_text())
        step, batches_seen = state["step"], state["batches_seen"]
        metrics.update({k: v for k, v in state.items() if k.startswith("initial_")})
        accelerator.print(f"resumed from {checkpoint} at step {step}")
    else:
        scores = evaluate_fn(model, val_loader, accelerator)
        metrics.update({"initial_" + metric_name(k): v for k, v in scores.items()})
        accelerator.log(scores, step=0)
        accelerator.print(f"step 0: val bpsp {metrics['initial_val_bpsp']:.4f}")

    def batches(seen):
        """Endless batches from position `seen`: same order as an uninterrupted run."""
        epoch, offset = divmod(seen, len(train_loader))
        while True:
            train_loader.set_epoch(epoch)
            yield from accelerator.skip_first_batches(train_loader, offset) if offset else train_loader
            epoch, offset = epoch + 1, 0

    def save_state():
        save_checkpoint(accelerator, out, step, cfg.keep_checkpoints,
                        {"batches_seen": batches_seen, **{k: v for k, v in metrics.items() if k.startswith("initial_")}})

    stream = batches(batches_seen)
    began = time.perf_counter()
    window = {"bits": 0.0, "count": 0.0, "tokens": 0, "start": began, "sums": {}}
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=not accelerator.is_main_process)
    model.train()
    try:
        while step < cfg.max_steps:
            step_batches = [next(stream) for _ in range(cfg.grad_accum)]
            # Dropout draws depend on (seed, step, rank) only, so a resumed run repeats them exactly
            # (a DataLoader iterator draws from the global RNG when created, and a resume creates one more).
            set_seed(cfg.seed + step, device_specific=True)
            for batch in step_batches:
                with accelerator.accumulate(model):
                    result = compute_loss(model, batch)
                    accelerator.backward(result["loss"])
                    if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                window["bits"] += result["bits"].item()
                window["count"] += result["count"].item()
                window["tokens"] += batch["input_ids"].numel()
                for tag, value in result.get("sums", {}).items():
                    window["sums"][tag] = window["sums"].get(tag, 0.0) + value.item()
            step, batches_seen = step + 1, batches_seen + cfg.grad_accum  # only whole steps count
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                tags = sorted(window["sums"])
                totals = accelerator.reduce(torch.tensor([window["bits"], window["count"], window["tokens"]]
                                                         + [window["sums"][t] for t in tags],
                                                         device=accelerator.device), "sum")
                seconds = time.perf_counter() - window["start"]
                train_bpsp = (totals[0] / totals[1]).item()
                accelerator.log({"train/bpsp": train_bpsp, "train/lr": scheduler.get_last_lr()[0],
                                 "train/tokens_per_s": totals[2].item() / seconds,
                                 **{t: (totals[3 + i] / totals[1]).item() for i, t in enumerate(tags)}}, step=step)
                bar.set_postfix(bpsp=f"{train_bpsp:.3f}")
                window = {"bits": 0.0, "count": 0.0, "tokens": 0, "start": time.perf_counter(), "sums": {}}
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                scores = evaluate_fn(model, val_loader, accelerator)
                metrics.update({metric_name(k): v for k, v in scores.items()})
                accelerator.log(scores, step=step)
                bar.write(f"step {step}: val bpsp {metrics['val_bpsp']:.4f}" + "".join(
                    f", {k} {v:.4f}" for k, v in scores.items() if k != "val/bpsp"))
            if step % cfg.save_every == 0 or step == cfg.max_steps:
                save_state()
            if cfg.slice_minutes > 0 and time.perf_counter() - began > 60 * cfg.slice_minutes and step < cfg.max_steps:
                if step % cfg.save_every:
                    save_state()
                accelerator.print(f"slice of {cfg.slice_minutes} min done: state saved at step {step} in "
                                  f"{out / 'checkpoints'}; rerun with resume=true to go on")
                return {**metrics, "steps": step, "finished": False}
    except KeyboardInterrupt:
        save_state()
        accelerator.print(f"\ninterrupted: state saved at step {step}; continue with resume=true")
        raise
    finally:
        bar.close()
        accelerator.end_training()

    metrics["steps"] = step
    if metrics["val_bpsp"] is None:  # resumed a run that had already finished
        metrics.update({metric_name(k): v for k, v in evaluate_fn(model, val_loader, accelerator).items()})
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

"""The training loop every recipe runs: resume, steps, logging, evaluation, checkpoints, slices, Ctrl-C.

A recipe (trainer.train.loop: the LM, plain or distilled; trainer.train.context: the context
student) builds its model, data and optimizer, prepares them with Accelerate and hands `run_loop`
only what differs: one optimizer step, its evaluation, and what its training state holds beyond
the step. `run_loop` resumes or scores the fresh model, runs the steps to max_steps and returns;
the recipe then writes its final/ folder (trainer.train.checkpointing.save_final).

Logged to tensorboard: train/bpsp, train/lr, train/<rate>_per_s and the per-subpixel mean of each
tag a step sums, every log_every steps; the evaluation's scores at step 0 and every eval_every
steps. A training state is saved every save_every steps and at max_steps; at the end of a slice
(slice_minutes) and on Ctrl-C, one is saved at the current step, so resume=true goes on exactly.
"""

import json
import math
import time
from functools import partial
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from trainer.config import RunConfig, flat_dict
from trainer.train.checkpointing import STATE_FILE, find_resume, save_checkpoint


def make_accelerator(cfg: RunConfig, **options) -> Accelerator:
    """Accelerate for cfg's run (its mixed precision, tensorboard logs in output_dir), every RNG seeded."""
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, log_with="tensorboard",
                              project_dir=cfg.output_dir, **options)
    set_seed(cfg.seed)
    torch.set_flush_denormal(True)  # tiny Adam states otherwise slow CPU steps down 2x as training goes on
    return accelerator


def lr_lambda(step: int, cfg: RunConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio of the peak."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(parameters, cfg: RunConfig):
    """AdamW on `parameters` and its schedule (lr_lambda), stepped once an optimizer step."""
    optimizer = torch.optim.AdamW(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_lambda, cfg=cfg))


def update(accelerator, loss, parameters, optimizer, scheduler, max_grad_norm: float) -> None:
    """Backward, then (once gradients are synced) clipping, the optimizer's and the schedule's step."""
    accelerator.backward(loss)
    if accelerator.sync_gradients and max_grad_norm > 0:
        accelerator.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


def metric_name(tag: str) -> str:
    return tag.replace("/", "_")  # "val/bpsp" -> "val_bpsp"


def train_scalars(accelerator, window: dict, rate: str, seconds: float) -> dict:
    """The sums of a log window, added over every process: bits per subpixel, `rate` per second, and
    any other tag ("kd/kl") per subpixel."""
    names = sorted(window)
    added = accelerator.reduce(torch.tensor([window[n] for n in names], device=accelerator.device), "sum")
    total = dict(zip(names, added.tolist()))
    return {"train/bpsp": total["bits"] / total["subpixels"], f"train/{rate}_per_s": total[rate] / seconds,
            **{tag: total[tag] / total["subpixels"] for tag in names if tag not in ("bits", "subpixels", rate)}}


def run_loop(accelerator, cfg: RunConfig, metrics: dict, scheduler, train_step, evaluate, rate: str,
             position: dict | None = None) -> bool:
    """Run cfg's steps, from the state cfg.resume names or from step 0; True once max_steps is done,
    False when the slice (slice_minutes) ended first.

    - `train_step(step)` runs optimizer step `step` and returns its sums: "bits", "subpixels", `rate`
      (what train/<rate>_per_s counts) and any other tag ("kd/kl"), logged per subpixel;
    - `evaluate()` -> {tag: value} with at least "val/bpsp", kept in metrics as "val_bpsp" (and
      "initial_val_bpsp" at step 0; a resumed state brings those back);
    - `position`: what the recipe needs beyond the step to resume exactly (the LM: batches consumed),
      saved in every state and restored in place from one before the first step.
    metrics gains the scores and "steps".
    """
    out, position = Path(cfg.output_dir), {} if position is None else position
    accelerator.init_trackers("tensorboard", config=flat_dict(cfg))
    step = 0
    checkpoint = find_resume(cfg.resume, out)
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / STATE_FILE).read_text())
        step = state["step"]
        position.update({k: state[k] for k in position})
        metrics.update({k: v for k, v in state.items() if k.startswith("initial_")})
        accelerator.print(f"resumed from {checkpoint} at step {step}")
    else:
        scores = evaluate()
        metrics.update({"initial_" + metric_name(k): v for k, v in scores.items()})
        accelerator.log(scores, step=0)
        accelerator.print(f"step 0: val bpsp {metrics['initial_val_bpsp']:.4f}")

    def save_state():
        save_checkpoint(accelerator, out, step, cfg.keep_checkpoints,
                        {**position, **{k: v for k, v in metrics.items() if k.startswith("initial_")}})

    began = window_start = time.perf_counter()
    window = {}
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=not accelerator.is_main_process)
    try:
        while step < cfg.max_steps:
            for name, value in train_step(step).items():
                window[name] = window.get(name, 0.0) + value
            step += 1  # only whole steps count
            bar.update(1)
            last = step == cfg.max_steps
            if step % cfg.log_every == 0 or last:
                scalars = train_scalars(accelerator, window, rate, time.perf_counter() - window_start)
                accelerator.log({**scalars, "train/lr": scheduler.get_last_lr()[0]}, step=step)
                bar.set_postfix(bpsp=f"{scalars['train/bpsp']:.3f}")
                window, window_start = {}, time.perf_counter()
            if step % cfg.eval_every == 0 or last:
                scores = evaluate()
                metrics.update({metric_name(k): v for k, v in scores.items()})
                accelerator.log(scores, step=step)
                if accelerator.is_main_process:
                    bar.write(f"step {step}: val bpsp {scores['val/bpsp']:.4f}" + "".join(
                        f", {k} {v:.4f}" for k, v in scores.items() if k != "val/bpsp"))
            if step % cfg.save_every == 0 or last:
                save_state()
            if cfg.slice_minutes > 0 and time.perf_counter() - began > 60 * cfg.slice_minutes and not last:
                if step % cfg.save_every:
                    save_state()
                accelerator.print(f"slice of {cfg.slice_minutes} min done: state saved at step {step} in "
                                  f"{out / 'checkpoints'}; rerun with resume=true to go on")
                metrics["steps"] = step
                return False
    except KeyboardInterrupt:
        save_state()
        accelerator.print(f"\ninterrupted: state saved at step {step}; continue with resume=true")
        raise
    finally:
        bar.close()
        accelerator.end_training()
    metrics["steps"] = step
    if metrics.get("val_bpsp") is None:  # resumed a run that had already finished
        metrics.update({metric_name(k): v for k, v in evaluate().items()})
    return True

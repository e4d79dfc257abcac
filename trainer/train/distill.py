"""Knowledge distillation: a small student learns a trained teacher's next-subpixel distributions.

`accelerate launch distill.py recipe=NAME [key=value ...]` (recipe schema: config.DistillConfig).

- The teacher is a train.py `final/` folder, loaded frozen (no gradients, never in a training state:
  a resumed run rebuilds it from its folder).
- The student is built from `model.config` (random init) with the teacher's tokenizer, pixel
  vocabulary and prompt, so teacher and student read the very same batches (same token ids).
- Loss, per subpixel at the patch positions, in bits:
      (1 - kd_ratio) * CE(true value, student) + kd_ratio * T^2 * KL(teacher_T || student_T)
  where p_T = softmax(logits / T) over the 256 pixel tokens. `log_softmax(log_probs / T)` equals
  `log_softmax(logits / T)` (a constant shift cancels), so the distributions PixelLM.forward returns
  are all that is needed.
- The training loop is trainer.loop.train, with this module's loss and evaluation plugged in.
  Logged: kd/kl (training KL at temperature T), val/bpsp (student), val/teacher_bpsp and
  kd/val_kl (KL at T = 1, i.e. student cross-entropy minus teacher entropy) on the same val patches.
"""

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from trainer.config import DistillConfig, RecipeError
from trainer.train.loop import train
from trainer.models.pixel_lm import ModelLoadError, PixelLM, load_prompt_parts
from trainer.train.kd import kl_bits


def check_recipe(cfg: DistillConfig) -> None:
    if not cfg.teacher:
        raise RecipeError("distillation needs teacher=PATH (a train.py final/ folder, e.g. checkpoints/quickstart/final)")
    if not (Path(cfg.teacher) / "config.json").is_file():
        raise ModelLoadError(f"teacher={cfg.teacher} is not a trained pixlm checkpoint (train.py writes one to "
                             "OUTPUT_DIR/final; run the teacher's recipe first)")
    if not 0.0 <= cfg.kd_ratio <= 1.0:
        raise RecipeError(f"kd_ratio={cfg.kd_ratio}: must be in [0, 1]")
    if cfg.temperature <= 0:
        raise RecipeError(f"temperature={cfg.temperature}: must be > 0")
    if cfg.model.base != "config" or "model_type" not in cfg.model.config:
        raise RecipeError("the student is built from model.config: set model.base=config and model.config.model_type")
    if cfg.lora.enabled:
        raise RecipeError("the student is trained fully from scratch: set lora.enabled=false")


def load_teacher(cfg: DistillConfig) -> PixelLM:
    teacher = PixelLM.from_pretrained(cfg.teacher, dtype=getattr(torch, cfg.teacher_dtype))
    return teacher.eval().requires_grad_(False)


def build_student(cfg: DistillConfig) -> PixelLM:
    """A random-init student from model.config, sharing the teacher's tokenizer, vocabulary and prompt."""
    tokenizer, vocab, prompt = load_prompt_parts(Path(cfg.teacher))
    cfg.prompt = prompt.spec  # recipe.yaml then records the prompt actually used
    kwargs = dict(cfg.model.config)
    config = AutoConfig.for_model(kwargs.pop("model_type"), **kwargs, vocab_size=len(tokenizer))
    config._attn_implementation = cfg.model.attn_implementation
    lm = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, cfg.model.dtype))
    return PixelLM(lm, tokenizer, vocab, prompt)


class Distiller:
    """The loss and evaluation trainer.loop.train calls; holds the frozen teacher."""

    def __init__(self, cfg: DistillConfig):
        self.teacher = load_teacher(cfg)
        self.temperature, self.kd_ratio = cfg.temperature, cfg.kd_ratio

    @torch.no_grad()
    def teacher_out(self, batch) -> dict:
        device = batch["input_ids"].device
        if self.teacher.pixel_head.weight.device != device:
            self.teacher.to(device)
        return self.teacher(**batch)

    def loss(self, model, batch) -> dict:
        student = model(**batch)
        kl = kl_bits(self.teacher_out(batch)["log_probs"], student["log_probs"], self.temperature).sum()
        count = student["count"].clamp(min=1)
        loss = (1 - self.kd_ratio) * student["loss"] + self.kd_ratio * self.temperature ** 2 * kl / count
        return {**student, "loss": loss, "sums": {"kd/kl": kl.detach()}}

    @torch.no_grad()
    def evaluate(self, model, loader, accelerator) -> dict:
        """Student bpsp, teacher bpsp and KL at T=1 on the same val patches (totals / subpixels)."""
        model.eval()
        totals = torch.zeros(4, dtype=torch.float64)
        for batch in loader:
            student, teacher = model(**batch), self.teacher_out(batch)
            rows = batch["loss_mask"][:, 1:].bool().nonzero()[:, 0]
            kl = kl_bits(teacher["log_probs"], student["log_probs"], 1.0)
            seq_kl = torch.zeros(len(batch["input_ids"]), device=kl.device).index_add(0, rows, kl)
            gathered = accelerator.gather_for_metrics(
                (student["seq_bits"], teacher["seq_bits"], seq_kl, student["seq_count"]))
            totals += torch.stack([g.double().sum().cpu() for g in gathered])
        model.train()
        student_bits, teacher_bits, kl_total, count = totals.tolist()
        return {"val/bpsp": student_bits / count, "val/teacher_bpsp": teacher_bits / count,
                "kd/val_kl": kl_total / count}


def distill(cfg: DistillConfig) -> dict:
    """Distil cfg.teacher into the student described by cfg.model; returns the run's metrics."""
    check_recipe(cfg)
    distiller = Distiller(cfg)
    return train(cfg, build_model=build_student, compute_loss=distiller.loss, evaluate_fn=distiller.evaluate)

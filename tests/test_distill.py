"""Distillation with real tiny models: a student learns the teacher's distributions, resumes exactly, logs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainer.config import DistillConfig, RecipeError, TrainConfig, load_recipe
from trainer.train.distill import distill
from trainer.train.kd import kl_bits
from trainer.models.pixel_lm import PixelLM, count_parameters

REPO = Path(__file__).resolve().parent.parent
STUDENT = ["model.config.hidden_size=32", "model.config.intermediate_size=64", "model.config.num_hidden_layers=1",
           "model.config.num_attention_heads=2", "model.config.num_key_value_heads=2"]


@pytest.fixture
def distill_overrides(teacher_dir, crop_dir, tmp_path) -> list[str]:
    """distill_small turned into a seconds-long run on the teacher fixture's data (same val patches)."""
    return STUDENT + [
        f"teacher={teacher_dir}", f"output_dir={tmp_path / 'run'}", f"data.train_dirs=[{crop_dir}]",
        "data.val_images=2", "data.patches_per_image=16", f"data.cache_dir={tmp_path / 'cache'}",
        "batch_size=8", "warmup_steps=2", "log_every=5", "eval_every=100", "save_every=100", "lr=3e-3"]


def scalars_of(folder: Path) -> dict:
    out = {}
    for event in folder.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(event))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    return out


def test_short_distillation_lowers_val_kl_and_logs_student_and_teacher(distill_overrides, teacher_dir):
    cfg = load_recipe("distill_small", distill_overrides + ["max_steps=16", "eval_every=8", "log_every=4"], schema=DistillConfig)
    metrics = distill(cfg)
    assert metrics["steps"] == 16
    assert metrics["kd_val_kl"] < 0.7 * metrics["initial_kd_val_kl"], metrics  # measured 0.385 -> 0.077 in 30 steps
    assert metrics["val_bpsp"] < metrics["initial_val_bpsp"] - 0.05, metrics  # measured 7.971 -> 7.889
    # The teacher is frozen and scored on the very val patches it was validated on in training.
    teacher_val = json.loads((teacher_dir / "metrics.json").read_text())["val_bpsp"]
    assert metrics["val_teacher_bpsp"] == pytest.approx(teacher_val, abs=1e-4)
    assert metrics["initial_val_teacher_bpsp"] == pytest.approx(metrics["val_teacher_bpsp"], abs=1e-6)

    scalars = scalars_of(Path(cfg.output_dir))
    assert {"kd/kl", "kd/val_kl", "val/bpsp", "val/teacher_bpsp", "train/bpsp"} <= set(scalars)
    assert [s for s, _ in scalars["kd/val_kl"]] == [0, 8, 16]
    assert [s for s, _ in scalars["kd/kl"]] == [4, 8, 12, 16] and all(v > 0 for _, v in scalars["kd/kl"])

    final = Path(cfg.output_dir) / "final"
    student, teacher = PixelLM.from_pretrained(final), PixelLM.from_pretrained(teacher_dir)
    assert count_parameters(student)["parameters"] < count_parameters(teacher)["parameters"] / 2
    assert student.vocab == teacher.vocab and student.prompt.spec == teacher.prompt.spec
    assert len(student.tokenizer) == len(teacher.tokenizer)
    assert f"teacher: {teacher_dir}" in (final / "recipe.yaml").read_text()


def test_resumed_distillation_continues_at_the_right_step(distill_overrides, tmp_path):
    """6 steps straight == 3 steps + resume + 3 steps, bit for bit; states hold the student only."""
    common = distill_overrides + ["max_steps=6", "save_every=3", "keep_checkpoints=3"]
    straight = distill(load_recipe("distill_small", common + [f"output_dir={tmp_path / 'a'}"], schema=DistillConfig))
    half = tmp_path / "a" / "checkpoints" / "checkpoint-0000003"
    assert json.loads((half / "trainer_state.json").read_text())["step"] == 3
    assert not list(half.glob("model_1*")), "the teacher must not be saved in training states"
    student_keys = set(load_file(tmp_path / "a" / "final" / "model.safetensors"))
    assert {k.removeprefix("lm.") for k in load_file(half / "model.safetensors")} - {"pixel_head.weight"} <= student_keys

    resumed = distill(load_recipe("distill_small", common + [f"output_dir={tmp_path / 'b'}", f"resume={half}"],
                                  schema=DistillConfig))
    assert resumed["steps"] == 6
    assert resumed["initial_kd_val_kl"] == straight["initial_kd_val_kl"]
    assert resumed["kd_val_kl"] == pytest.approx(straight["kd_val_kl"], abs=1e-9)
    a, b = load_file(tmp_path / "a" / "final" / "model.safetensors"), load_file(tmp_path / "b" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kl_is_zero_for_equal_distributions_and_temperature_flattens():
    logp = torch.log_softmax(torch.randn(5, 256) * 4, -1)
    assert torch.allclose(kl_bits(logp, logp, 2.0), torch.zeros(5), atol=1e-6)
    other = torch.log_softmax(torch.randn(5, 256) * 4, -1)
    assert (kl_bits(logp, other, 4.0) < kl_bits(logp, other, 1.0)).all()


def test_bad_distillation_recipes_are_clear_errors(distill_overrides, tmp_path):
    with pytest.raises(RecipeError, match="temperature") as err:
        load_recipe("distill_small", ["tempreature=3"], schema=DistillConfig)
    assert "valid keys:" in str(err.value) and "kd_ratio" in str(err.value)
    with pytest.raises(RecipeError, match="kd_ratio"):
        load_recipe("distill_small", ["kd_ratio=lots"], schema=DistillConfig)
    with pytest.raises(RecipeError, match="distill.py"):  # train.py refuses a distillation recipe
        load_recipe("distill_small", schema=TrainConfig)
    for bad, words in (("kd_ratio=1.5", "kd_ratio"), ("temperature=0", "temperature"), ("teacher=''", "teacher=PATH"),
                       ("lora.enabled=true", "lora.enabled=false")):
        with pytest.raises(RecipeError, match=words):
            distill(load_recipe("distill_small", distill_overrides + [bad], schema=DistillConfig))
    # From the command line: one line on stderr, exit status 2, nothing trained.
    run = subprocess.run([sys.executable, "distill.py", "recipe=distill_small", f"teacher={tmp_path / 'none'}",
                          f"output_dir={tmp_path / 'x'}"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.strip().startswith("error:") and "not a trained pixlm" in run.stderr
    assert not (tmp_path / "x").exists()

"""Real (tiny) training runs on CPU: learning, resume, tensorboard logs, LoRA save/reload."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainer.config import load_recipe
from trainer.train.loop import train
from trainer.models.pixel_lm import ModelLoadError, PixelLM, byte_tokenizer, from_adapter

REPO = Path(__file__).resolve().parent.parent


def state_of(folder: Path) -> dict:
    return load_file(folder / "model.safetensors")


def test_short_run_lowers_val_bpsp_and_logs_to_tensorboard(tiny_overrides, tmp_path):
    cfg = load_recipe("quickstart", tiny_overrides + ["max_steps=40", "lr=3e-3", "eval_every=20"])
    metrics = train(cfg)
    assert metrics["steps"] == 40
    assert metrics["val_bpsp"] < metrics["initial_val_bpsp"] - 0.3, metrics
    final = Path(cfg.output_dir) / "final"
    assert json.loads((final / "metrics.json").read_text())["val_bpsp"] == pytest.approx(metrics["val_bpsp"])
    assert "max_steps: 40" in (final / "recipe.yaml").read_text()

    events = list(Path(cfg.output_dir).rglob("events.out.tfevents.*"))
    assert events
    scalars = {}
    for event in events:
        acc = EventAccumulator(str(event))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    assert {"train/bpsp", "val/bpsp", "train/lr", "train/tokens_per_s"} <= set(scalars)
    assert [s for s, _ in scalars["val/bpsp"]] == [0, 20, 40]
    assert scalars["val/bpsp"][-1][1] == pytest.approx(metrics["val_bpsp"], rel=1e-5)
    assert all(v > 0 for _, v in scalars["train/tokens_per_s"])

    reloaded = PixelLM.from_pretrained(final)  # the final folder is a self-contained checkpoint
    assert reloaded.vocab.kind == "added" and reloaded.prompt.spec.patch_width == 8


@pytest.mark.parametrize("lora", ["false", "true"])
def test_resume_continues_at_the_right_step_with_same_optimizer_and_data(tiny_overrides, tmp_path, lora):
    """6 steps straight == 3 steps, restart from the saved state, 3 more: bit for bit."""
    common = tiny_overrides + ["max_steps=6", "save_every=3", "keep_checkpoints=3", f"lora.enabled={lora}", "lora.dropout=0.1"]
    straight = load_recipe("quickstart", common + [f"output_dir={tmp_path / 'a'}"])
    train(straight)
    first_half = tmp_path / "a" / "checkpoints" / "checkpoint-0000003"
    state = json.loads((first_half / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["batches_seen"] == 3

    resumed = load_recipe("quickstart", common + [f"output_dir={tmp_path / 'b'}", f"resume={first_half}"])
    metrics = train(resumed)
    assert metrics["steps"] == 6
    a, b = state_of(tmp_path / "a" / "final"), state_of(tmp_path / "b" / "final")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    opt_a = torch.load(tmp_path / "a" / "checkpoints" / "checkpoint-0000006" / "optimizer.bin", weights_only=False)
    opt_b = torch.load(tmp_path / "b" / "checkpoints" / "checkpoint-0000006" / "optimizer.bin", weights_only=False)
    for sa, sb in zip(opt_a["state"].values(), opt_b["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and sa["step"] == sb["step"]

    # resume=true in a finished run finds the latest state and has nothing left to do
    again = load_recipe("quickstart", common + [f"output_dir={tmp_path / 'b'}", "resume=true"])
    assert train(again)["steps"] == 6


def test_lora_on_a_local_model_saves_and_reloads(tiny_overrides, tmp_path):
    """LoRA on a tiny pretrained-style local folder: adapter and merged weights give the same predictions."""
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM

    base_dir = tmp_path / "base"
    tokenizer = byte_tokenizer()
    config = AutoConfig.for_model("llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, vocab_size=len(tokenizer))
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)

    cfg = load_recipe("quickstart", tiny_overrides + [
        f"model.base={base_dir}", "model.tokenizer=base", "lora.enabled=true", "lora.r=4", "lora.alpha=8",
        "max_steps=4", "lr=5e-3"])
    train(cfg)
    final = Path(cfg.output_dir) / "final"
    merged = PixelLM.from_pretrained(final).eval()

    lm = AutoModelForCausalLM.from_pretrained(base_dir)
    lm.resize_token_embeddings(len(merged.tokenizer), mean_resizing=False)
    adapted = PixelLM(PeftModel.from_pretrained(lm, final / "adapter"), merged.tokenizer, merged.vocab,
                      merged.prompt, merged.pixel_head).eval()
    ids = torch.tensor([list(merged.prompt.prefix(torch.full((1, 16, 3), -1, dtype=torch.int16).numpy()))
                        + list(merged.vocab.token_ids[:40])])
    with torch.no_grad():
        a = merged.log_probs(merged.hidden_states(ids)[0])
        b = adapted.log_probs(adapted.hidden_states(ids)[0])
    assert torch.allclose(a, b, atol=1e-5)
    state = load_file(next(Path(cfg.output_dir, "checkpoints").glob("checkpoint-*")) / "model.safetensors")
    assert state and all("lora_" in k or "pixel_head" in k or "trainable_tokens" in k for k in state)  # no frozen base copy
    adapter_weights = load_file(final / "adapter" / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter_weights.items())  # LoRA really trained

    # What travels back from a GPU: the folder without its merged weights, rebuilt on the base.
    (final / "model.safetensors").unlink()
    rebuilt = from_adapter(final).eval()
    with torch.no_grad():
        assert torch.allclose(a, rebuilt.log_probs(rebuilt.hidden_states(ids)[0]), atol=1e-5)
    with pytest.raises(ModelLoadError, match="no adapter"):
        from_adapter(tmp_path / "run")


def test_cli_errors_are_one_clear_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True,
                              env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    bad_key = run("recipe=quickstart", "max_stepz=3")
    assert bad_key.returncode == 2 and "max_stepz" in bad_key.stderr and "Traceback" not in bad_key.stderr
    no_recipe = run("max_steps=3")
    assert no_recipe.returncode == 2 and "quickstart" in no_recipe.stderr


def test_lora_clic_builds_its_config_and_fails_clearly_offline(tmp_path):
    cfg = load_recipe("lora_clic")
    assert cfg.model.base.startswith("meta-llama/") and cfg.lora.r == 64 and cfg.model.pixel_vocab == "numerals"
    result = subprocess.run([sys.executable, "train.py", "recipe=lora_clic", f"output_dir={tmp_path}/clic"],
                            cwd=REPO, capture_output=True, text=True,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "cannot load" in result.stderr and "meta-llama/Llama-3.2-1B" in result.stderr
    assert "Traceback" not in result.stderr


def test_interrupt_saves_a_state_that_resume_continues(tiny_overrides, tmp_path):
    """Ctrl-C (SIGINT) mid-run: a state is saved at the current step and resume=true goes on from it."""
    import os
    import re
    import signal
    import threading
    import time

    out = tmp_path / "run"
    args = [a for a in tiny_overrides if not a.startswith("output_dir=")] + [f"output_dir={out}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PIXLM_CACHE": str(tmp_path / "cache")}
    # A background job (nohup, `cmd &`) inherits SIGINT ignored, and Python then installs no Ctrl-C
    # handler: give the run the default disposition, as a terminal would.
    proc = subprocess.Popen([sys.executable, "train.py", "recipe=quickstart", "max_steps=100000", "log_every=1", *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = {"out": [], "err": []}
    readers = [threading.Thread(target=lambda f, k: lines[k].extend(f), args=(stream, key), daemon=True)
               for stream, key in ((proc.stdout, "out"), (proc.stderr, "err"))]  # '\r' updates become lines
    for reader in readers:
        reader.start()

    def steps_done() -> int:
        found = [int(m.group(1)) for line in lines["err"][-50:] for m in [re.search(r"train:.*\| *(\d+)/100000", line)] if m]
        return max(found, default=0)

    deadline = time.time() + 180
    while steps_done() < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # Ctrl-C once training runs
    proc.wait(timeout=120)  # the reader threads keep the pipes drained
    for reader in readers:
        reader.join(timeout=30)
    err = "".join(lines["err"])
    assert proc.returncode == 130, err[-2000:]
    states = sorted((out / "checkpoints").glob("checkpoint-*/trainer_state.json"))
    assert len(states) == 1
    stopped = json.loads(states[0].read_text())["step"]
    assert stopped > 0
    metrics = train(load_recipe("quickstart", args + [f"max_steps={stopped + 2}", "resume=true"]))
    assert metrics["steps"] == stopped + 2

"""Training states and the final folder, for the loop every recipe runs (trainer.train.skeleton).

Each state goes to its own `checkpoints/checkpoint-STEP/` folder with a `trainer_state.json` (the
step and whatever the loop needs to resume exactly) written last, so a resume never trusts a
half-written state and never depends on Accelerate's own iteration counter (which can resume at
the wrong step).
"""

import json
import shutil
from pathlib import Path

from trainer.config import to_yaml


STATE_FILE = "trainer_state.json"


def find_resume(resume: str, output_dir: Path) -> Path | None:
    """The checkpoint folder to resume from, or None for a fresh run."""
    if resume.lower() in ("", "false", "none", "no"):
        return None
    if resume.lower() in ("true", "yes", "latest"):
        done = sorted(p.parent for p in (output_dir / "checkpoints").glob(f"checkpoint-*/{STATE_FILE}"))
        return done[-1] if done else None  # nothing saved yet: start fresh
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"resume={resume}: not a checkpoint folder (no {STATE_FILE})")
    return path


def save_checkpoint(accelerator, out: Path, step: int, keep: int, state: dict) -> None:
    """Accelerate state into out/checkpoints/checkpoint-STEP, then its trainer_state.json ({"step": step,
    **state}) written last, so a half-written state is never resumed; only the newest `keep` stay."""
    folder = out / "checkpoints" / f"checkpoint-{step:07d}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        (folder / STATE_FILE).write_text(json.dumps({"step": step, **state}))
        done = sorted(p.parent for p in (out / "checkpoints").glob(f"checkpoint-*/{STATE_FILE}"))
        for old in done[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def save_final(accelerator, out: Path, model, cfg, metrics: dict, hint: str) -> Path:
    """out/final: the model's save_pretrained folder, the recipe as run and its metrics (main process)."""
    final = out / "final"
    if accelerator.is_main_process:
        model.save_pretrained(final)
        (final / "recipe.yaml").write_text(to_yaml(cfg))
        (final / "metrics.json").write_text(json.dumps(metrics, indent=1))
        accelerator.print(f"wrote {final} (model, recipe.yaml, metrics.json); {hint}")
    return final

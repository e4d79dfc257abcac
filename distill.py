"""Distil a trained pixlm teacher into a smaller student: `accelerate launch distill.py recipe=NAME [key=value ...]`.

Recipes (recipes/distill_*.yaml) take every train.py key plus `teacher` (a train.py final/ folder),
`temperature` and `kd_ratio`; the student is `model` built from `model.config` with the teacher's
tokenizer, pixel vocabulary and prompt. `resume=true` continues the latest saved state (the frozen
teacher is reloaded from its folder). Plain `python distill.py ...` runs on one process too.
"""

import sys

from trainer.cli import run_recipe_script
from trainer.config import DistillConfig
from trainer.train.distill import distill

if __name__ == "__main__":
    sys.exit(run_recipe_script(distill, sys.argv[1:], schema=DistillConfig))

"""Fine-tune a causal LM on pixels: `accelerate launch train.py recipe=NAME [key=value ...]`.

Recipes live in recipes/*.yaml; any key can be overridden with a dotted key=value
(e.g. `max_steps=50 data.train_dirs=[/data/div2k] lora.r=16`). `resume=true` continues the
latest saved state in output_dir. Plain `python train.py ...` runs on one process too.
"""

import sys

from trainer.cli import run_recipe_script
from trainer.train.loop import train

if __name__ == "__main__":
    sys.exit(run_recipe_script(train, sys.argv[1:]))

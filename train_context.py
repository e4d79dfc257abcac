"""Train the causal-context student: `accelerate launch train_context.py recipe=NAME [key=value ...]`.

The fast deployable model of pixlm (trainer/context_model.py): it predicts each subpixel from a
fixed causal window, so its codec decodes a whole anti-diagonal of pixels per model call.
`resume=true` continues the latest saved state; then `pixlm export OUTPUT_DIR/final BUNDLE_DIR`.
"""

import sys

from trainer.cli import run_recipe_script
from trainer.train.context import ContextTrainConfig, train_context

if __name__ == "__main__":
    sys.exit(run_recipe_script(train_context, sys.argv[1:], schema=ContextTrainConfig))

"""Write a recipe's training and validation patches to one uint8 file (trainer/train/patch_file.py):
`python write_patch_file.py recipe=NAME [key=value ...]`, the file named by `data.patch_file`.
"""

import sys

from trainer.cli import run_recipe_script
from trainer.train.patch_file import main

if __name__ == "__main__":
    sys.exit(run_recipe_script(main, sys.argv[1:]))

"""A regular (not editable) `pip install .` finds its recipes and the shipped bundles (trainer/paths.py)."""

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "expected" / "astronaut-32x20.png"


def test_a_regular_install_codes_with_the_shipped_bundle_and_finds_recipes(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "gpu", "streams", "maps", "build",
                                                                "*.egg-info", "__pycache__", "gpu_ab"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # The dependencies come from this environment (a .pth line), pixlm itself from the wheel.
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", "--prefix", str(venv),
                              str(source)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PIXLM_BUNDLES": ""}
    env.pop("PYTHONPATH", None)
    work = tmp_path / "elsewhere"
    work.mkdir()
    run = lambda *a: subprocess.run([python, *map(str, a)], cwd=work, env=env, capture_output=True, text=True)
    where = run("-c", "import trainer, trainer.paths as p; print(trainer.__file__); print(p.resource('recipes'))")
    assert where.returncode == 0 and str(venv) in where.stdout and "share/pixlm/recipes" in where.stdout, where
    recipe = run("-c", "from trainer.config import load_recipe; print(load_recipe('quickstart').max_steps)")
    assert recipe.returncode == 0 and recipe.stdout.strip() == "300", recipe.stderr
    enc = run("-m", "trainer.cli", "encode", GOLDEN, work / "a.pxl", "--quiet")
    assert enc.returncode == 0, enc.stderr
    dec = run("-m", "trainer.cli", "decode", work / "a.pxl", work / "a.png", "--quiet")
    assert dec.returncode == 0, dec.stderr
    assert np.array_equal(np.asarray(Image.open(work / "a.png")), np.asarray(Image.open(GOLDEN)))

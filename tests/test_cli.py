"""The pixlm command's own habits (file handling is tested with the codecs in test_codec.py)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_help_and_argument_errors_do_not_load_torch_or_transformers():
    """`pixlm --help`, `--version` and argument errors answer before any heavy import."""
    probe = ("import sys, trainer.cli as cli\n"
             "for argv in (['--help'], ['--version'], ['encode'], ['decode', 'a.pxl', 'b.png', '--threads', '0']):\n"
             "    try:\n        cli.main(argv)\n    except SystemExit as e:\n        print('exit', e.code)\n"
             "print('heavy', 'torch' in sys.modules, 'transformers' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "heavy False False", out.stdout + out.stderr
    assert "exit 0" in out.stdout and out.stdout.count("exit 2") == 2
    from trainer import __version__

    assert f"pixlm {__version__}" in out.stdout and "must be at least 1" in out.stderr


def test_the_package_and_its_metadata_name_one_version():
    import re

    from trainer import __version__

    declared = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert declared == __version__

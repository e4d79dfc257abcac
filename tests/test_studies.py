"""The study scripts (benchmarks/studies) use pixlm as any user would: installed, public names only."""

import ast
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.rglob("*.py"))


def test_study_scripts_import_only_public_names_without_path_edits():
    assert len(SCRIPTS) >= 10
    for script in SCRIPTS:
        source = script.read_text()
        assert "sys.path" not in source, f"{script.name} edits sys.path"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trainer"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{script.name} imports private {private} from {node.module}"


def test_study_scripts_import_cleanly():
    """Every script's imports resolve against today's package (one process, no `main`)."""
    code = "import runpy, sys\nfor path in sys.argv[1:]:\n    runpy.run_path(path, run_name='study')\n"
    run = subprocess.run([sys.executable, "-c", code, *map(str, SCRIPTS)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]

"""Where pixlm's own files are: recipes/, the shipped bundles in checkpoints/, data/manifests/.

A source checkout (or an editable install) has them at the repository root, beside `trainer/`; a
regular `pip install .` copies them to `<prefix>/share/pixlm/` (pyproject's data-files). Every
module asks here, so both layouts work the same way.
"""

import sys
import sysconfig
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def _roots() -> list[Path]:
    roots = [_CHECKOUT]
    for prefix in {sys.prefix, sysconfig.get_paths()["data"]}:
        roots.append(Path(prefix) / "share" / "pixlm")
    return roots


def resource(name: str) -> Path:
    """The first existing `name` (e.g. "recipes") among the checkout root and the installed share
    folder; the checkout's path if none exists (so error messages name the expected place)."""
    for root in _roots():
        if (root / name).exists():
            return root / name
    return _CHECKOUT / name


def repo_root() -> Path:
    """The checkout's root (where ../shared/data sits beside it in this project's layout)."""
    return _CHECKOUT

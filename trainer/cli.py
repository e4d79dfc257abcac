"""Command-line glue shared by the recipe scripts: parse `recipe=NAME key=value ...`, report errors."""

import logging
import sys

from .config import RecipeError, available_recipes, load_recipe
from .data import DataError
from .model import ModelLoadError
from .pixels import ImageModeError
from .vocab import VocabError

# Errors a user can fix from the message alone: one line, no traceback.
USER_ERRORS = (RecipeError, ModelLoadError, DataError, ImageModeError, VocabError, FileNotFoundError)


def split_args(argv: list[str]) -> tuple[str, list[str]]:
    recipes = [a for a in argv if a.startswith("recipe=")]
    if len(recipes) != 1:
        raise RecipeError(f"give exactly one recipe=NAME; available: {', '.join(available_recipes())}")
    return recipes[0].split("=", 1)[1], [a for a in argv if not a.startswith("recipe=")]


def run_recipe_script(main, argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        name, overrides = split_args(argv)
        cfg = load_recipe(name, overrides)
        metrics = main(cfg)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in metrics.items() if not isinstance(v, list)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """The `pixlm` command."""
    import argparse
    from pathlib import Path

    from .download import DownloadError, download, load_manifest

    parser = argparse.ArgumentParser(prog="pixlm", description="Causal LMs as lossless image codecs.")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="download an image set listed in a manifest, checksum-verified")
    fetch.add_argument("manifest", help="name in data/manifests (e.g. kodak) or a manifest .json path")
    fetch.add_argument("--dest", type=Path, required=True, help="folder to write the images to")
    args = parser.parse_args(argv)

    try:
        if args.command == "download":
            manifest = load_manifest(args.manifest)
            paths = download(manifest, args.dest, progress=lambda p: print(f"verified {p}", file=sys.stderr))
            print(f"{len(paths)} files in {args.dest}, all sha256-verified")
    except (DownloadError, *USER_ERRORS) as err:
        print(f"pixlm: error: {err}", file=sys.stderr)
        return 2
    return 0

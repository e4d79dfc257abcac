"""The `pixlm bench` command line: its arguments, checked before any work."""

import re
from itertools import product
from pathlib import Path


class BenchError(ValueError):
    """A bad argument or input, reported in one line (exit code 2)."""


def add_parser(commands) -> None:
    from trainer.bench.baselines import DEFAULT_BASELINES, DEFAULT_FILE_BASELINES

    cmd = commands.add_parser("bench", help="bpsp and speed of bundles vs PNG/WebP/JPEG-XL/JPEG 2000/JPEG-LS")
    cmd.add_argument("--data", type=Path, action="append", required=True, help="image folder (a set); repeatable")
    cmd.add_argument("--bundle", type=Path, action="append", default=[], help="codec bundle folder or shipped name "
                     "(pixlm-online-fast); repeatable")
    cmd.add_argument("--baselines", default=None,
                     help=f"comma-separated, or 'none' (default {','.join(DEFAULT_BASELINES)}; with --files "
                          f"{','.join(DEFAULT_FILE_BASELINES)})")
    cmd.add_argument("--files", action="store_true",
                     help="code each file as a file, restored byte for byte (a JPEG set): bundles encode the file "
                          "itself, baselines are lossless JPEG recompressors; sizes also against the input files")
    cmd.add_argument("--paq8px", default=None, metavar="PATH",
                     help="the paq8px program for the paq8px / paq8px-N baselines (default: $PIXLM_PAQ8PX, "
                          "else paq8px on PATH; ../shared/tools/paq8px/build.sh builds one)")
    cmd.add_argument("--out", type=Path, required=True, help="report folder")
    cmd.add_argument("--limit", type=int, default=None, help="first N images of each set")
    cmd.add_argument("--crop", default=None, help="center crop WxH of every image (smaller images stay whole)")
    cmd.add_argument("--resume", action="store_true", help="keep REPORT_DIR/results.jsonl and skip its pairs")
    cmd.add_argument("--threads", type=int, default=None,
                     help="CPU threads for every codec (default: trainer.cpu's: torch's count where "
                          "torch is loaded, else every CPU)")
    cmd.add_argument("--batch-size", type=int, default=256, help="bundle patches per model call")
    cmd.add_argument("--decode-variants", default=None,
                     help="repeat each bundle decode, e.g. 'threads=1,2;batch=1,64' (all combinations)")
    cmd.add_argument("--cost", nargs="?", const="default", default=None, metavar="PRICES.yaml",
                     help="add cost of ownership (default prices, or a YAML file overriding them)")
    cmd.add_argument("--quiet", action="store_true", help="no progress bars")


def parse_crop(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise BenchError(f"--crop {text!r}: expected WxH with positive integers, e.g. 256x256")
    return int(match[1]), int(match[2])


def parse_variants(text: str | None) -> list[dict]:
    """'threads=1,2;batch=1,64' -> every combination, as [{'threads': 1, 'batch': 1}, ...]."""
    if not text:
        return []
    axes = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, _, values = part.partition("=")
        key = key.strip()
        if key not in ("threads", "batch") or key in axes:
            raise BenchError(f"--decode-variants {text!r}: keys are threads= and batch=, each once, "
                             "e.g. 'threads=1,2;batch=1,64'")
        try:
            axes[key] = [int(v) for v in values.split(",")]
        except ValueError:
            raise BenchError(f"--decode-variants {text!r}: {key} needs integers, e.g. {key}=1,2") from None
        if not axes[key] or min(axes[key]) < 1:
            raise BenchError(f"--decode-variants {text!r}: {key} values must be >= 1")
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in product(*(axes[k] for k in keys))]

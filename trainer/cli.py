"""The `pixlm` command, and the glue shared by the recipe scripts (`recipe=NAME key=value ...`).

Heavy libraries (torch, transformers) are imported only once a command needs them, so `--help`
and argument errors answer at once, and encode, decode and info with an online bundle import
neither (`pip install .` without the `train` extra has none; tests/test_install.py checks it).
"""

import logging
import sys
from pathlib import Path

from trainer.config import Adaptation, RecipeError, TrainConfig, available_recipes, load_recipe


def user_errors() -> tuple:
    """Errors a user can fix from the message alone: one line, no traceback. An error class of a
    module that was never imported cannot have been raised, so such modules (torch's) stay unloaded."""
    from trainer.images.files import ImageModeError

    loaded = [getattr(sys.modules[name], error) for name, error in
              (("trainer.models.pixel_lm", "ModelLoadError"), ("trainer.train.data", "DataError"),
               ("trainer.tokenize.vocab", "VocabError")) if name in sys.modules]
    return (RecipeError, ImageModeError, FileNotFoundError, *loaded)


def _quiet_transformers() -> None:
    """No "Loading weights" bars of transformers: they would bury ours (nothing where it is not installed)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


def codec_errors() -> tuple:
    from trainer.errors import PixlmError  # bundles, streams, images, jobs, engine settings
    from trainer.train.download import DownloadError

    return (PixlmError, DownloadError, *user_errors())


def split_args(argv: list[str]) -> tuple[str, list[str]]:
    recipes = [a for a in argv if a.startswith("recipe=")]
    if len(recipes) != 1:
        raise RecipeError(f"give exactly one recipe=NAME; available: {', '.join(available_recipes())}")
    return recipes[0].split("=", 1)[1], [a for a in argv if not a.startswith("recipe=")]


def run_recipe_script(main, argv: list[str], schema: type = TrainConfig) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # not a line per file of every saved state
    try:
        name, overrides = split_args(argv)
        cfg = load_recipe(name, overrides, schema=schema)
        metrics = main(cfg)
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        if not isinstance(err, user_errors()):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in metrics.items() if not isinstance(v, list)))
    return 0


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def output_of(args) -> Path:
    """The output named positionally or with -o (not both); by default the input's name with the
    output's suffix beside it (a file) or the input folder itself (mirrored files beside their inputs)."""
    from trainer.codec.jobs import STD, STREAM_SUFFIX, JobError, decoded_as

    if args.output is not None and args.output_option is not None:
        raise JobError("name the output once: positionally or with -o")
    out = args.output if args.output is not None else args.output_option
    if out is not None:
        return out
    if args.input == STD:
        return STD
    if args.input.is_dir():
        return args.input
    if args.command == "encode":
        return args.input.with_suffix(STREAM_SUFFIX)
    return args.input.with_suffix(decoded_as(args.input)[1][0])


class _Coder:
    """Codes one (input, output) job of `pixlm encode` / `decode`, opening each bundle's codec once
    (per process: with --jobs every worker process holds its own). Picklable: it carries only the
    parsed arguments until a job opens a codec."""

    def __init__(self, args):
        self.args, self.codecs = args, {}

    def codec_for(self, path: Path):
        from trainer.codec import kinds
        from trainer.codec.bundle import Bundle, default_bundle, find_bundle, open_bundle
        from trainer.codec.registry import open_codec, stream_bundle_id

        args = self.args
        if args.command == "encode":
            bundle = args.bundle or default_bundle()
        else:  # a bad file is refused before any model loads
            bundle = args.bundle or find_bundle(stream_bundle_id(path))
        key = str(bundle.path if hasattr(bundle, "path") else bundle)
        if key not in self.codecs:
            bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
            if "transformers" in kinds.named(bundle.kind).modules:
                _quiet_transformers()
            self.codecs[key] = open_codec(bundle, device=args.device, batch_size=args.batch_size, threads=args.threads,
                                          progress=not args.quiet, fallback=not getattr(args, "no_fallback", False))
            if getattr(args, "max_pixels", None) is not None:
                self.codecs[key].max_pixels = args.max_pixels
        return self.codecs[key]

    def __call__(self, src: Path, dst: Path) -> str:
        """Code one job; its summary line. `-` as input or output goes through a temporary file."""
        import tempfile

        from trainer.codec.jobs import STD

        with tempfile.TemporaryDirectory() as tmp:
            if src == STD:
                src = Path(tmp) / "stdin"
                src.write_bytes(sys.stdin.buffer.read())
            target = Path(tmp) / "stdout" if dst == STD else dst
            codec = self.codec_for(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            if self.args.command == "encode":
                summary = codec.encode(src, target, strip=self.args.strip).summary("encode")
            else:
                summary = codec.decode(src, target, samples=False)[1].summary("decode")
            if dst == STD:
                sys.stdout.buffer.write(target.read_bytes())
                sys.stdout.buffer.flush()
        return summary


_WORKER: "_Coder | None" = None  # a --jobs worker process's coder


def _start_worker(args, threads: int) -> None:
    """A --jobs worker: its codecs code on `threads` threads (torch's for network bundles, the
    engine's stripes for online ones; no torch is imported for the latter)."""
    import argparse

    global _WORKER
    _WORKER = _Coder(argparse.Namespace(**{**vars(args), "threads": threads}))


def _work(src: Path, dst: Path) -> tuple[bool, str]:
    """(True, summary) or, for an error a user can act on, (False, its message); other errors raise."""
    try:
        return True, _WORKER(src, dst)
    except Exception as err:
        if not isinstance(err, codec_errors()):
            raise
        return False, str(err)


def _code_all(args, pairs) -> int:
    """Run every (input, output) job, in `--jobs` processes when there are several; with
    --keep-going past failures too. Exit code 2 if any failed. With stdout as output the summary
    goes to stderr."""
    from trainer.codec.jobs import STD

    jobs = min(args.jobs, len(pairs))
    if jobs > 1:
        return _code_in_processes(args, pairs, jobs)
    coder, failed = _Coder(args), []
    for src, dst in pairs:
        try:
            print(coder(src, dst), file=sys.stderr if dst == STD else sys.stdout, flush=True)
        except Exception as err:
            if not args.keep_going or not isinstance(err, codec_errors()):
                raise
            print(f"pixlm: error: {src}: {err}", file=sys.stderr)
            failed.append(src)
    return _failures(failed, len(pairs))


def _code_in_processes(args, pairs, jobs: int) -> int:
    """Independent files in parallel processes: each codes exactly as alone (the same bytes), on
    the cores it is given (--threads, or an even share); summaries print as files finish."""
    import argparse
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    quiet = argparse.Namespace(**{**vars(args), "quiet": True})  # one progress bar per process would garble
    threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)
    failed = []
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                             initargs=(quiet, threads)) as pool:
        futures = {pool.submit(_work, src, dst): src for src, dst in pairs}
        for future in as_completed(futures):
            ok, text = future.result()
            if ok:
                print(text, flush=True)
                continue
            print(f"pixlm: error: {futures[future]}: {text}", file=sys.stderr)
            failed.append(futures[future])
            if not args.keep_going:
                for pending in futures:
                    pending.cancel()
                return 2
    return _failures(failed, len(pairs))


def _failures(failed: list, total: int) -> int:
    if failed:
        print(f"pixlm: {len(failed)} of {total} files failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 2
    return 0


def _info(args) -> int:
    """`pixlm info`: headers only, like jxlinfo (numpy and the codec's headers; no torch, no model)."""
    import json

    from trainer.codec.info import describe, stream_info
    from trainer.errors import PixlmError

    status = 0
    for path in args.files:
        try:
            facts = stream_info(path.read_bytes())
        except (OSError, PixlmError) as err:
            print(f"pixlm: error: {path}: {err}", file=sys.stderr)
            status = 2
            continue
        facts.pop("bundle_id_bytes")
        print(json.dumps({"file": str(path), **facts}) if args.json else describe(path, facts))
    return status


def _resolve_bundles(args) -> bool:
    """Every --bundle as a folder: a path, or a shipped bundle's name as the API's bundle= takes it;
    False after printing the one-line error."""
    from trainer.codec.bundle import BundleError, resolve_bundle

    try:
        args.bundle = ([resolve_bundle(b) for b in args.bundle] if isinstance(args.bundle, list)
                       else resolve_bundle(args.bundle))
    except BundleError as err:
        print(f"pixlm: error: {err}", file=sys.stderr)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """The `pixlm` command."""
    import argparse

    from trainer import __version__

    parser = argparse.ArgumentParser(prog="pixlm", description="Causal LMs as lossless image codecs.")
    parser.add_argument("--version", action="version", version=f"pixlm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("encode", "compress an image (or every image in a folder) into .pxl"),
                            ("decode", "decompress a .pxl file into the original's samples and format (PNG, TIFF, PNM) with its "
                                      "metadata, or the very file it kept (a JPEG: the same .jpg bytes)")):
        cmd = commands.add_parser(name, help=help_text)
        cmd.add_argument("input", type=Path, help="a file, a folder, or - for stdin")
        cmd.add_argument("output", type=Path, nargs="?", default=None,
                         help="a file, a folder, or - for stdout (or -o); default: the input's name with "
                              + (".pxl" if name == "encode" else ".png (.tif, .ppm: the original's format)") + " beside it")
        cmd.add_argument("-o", "--output", dest="output_option", type=Path, default=None, metavar="OUTPUT",
                         help="the output, as an option (zstd's habit)")
        cmd.add_argument("--bundle", type=Path, default=None, help="codec bundle folder or shipped name, e.g. "
                         "pixlm-online-fast (default: "
                         + ("the shipped checkpoints/pixlm-online-max)" if name == "encode"
                            else "the known bundle whose id the file names)"))
        cmd.add_argument("--threads", type=_positive, default=None, help="CPU threads of a coding run: torch's for LM and integer "
                         "bundles, stripes at once for online bundles (the output does not depend on it; float "
                         "context bundles always compute on one thread)")
        cmd.add_argument("--device", default="cpu", help="LM bundles: cpu or cuda (a CUDA stream decodes on the "
                         "same GPU model; context bundles always code on the CPU)")
        cmd.add_argument("--batch-size", type=_positive, default=256, help="patches per model call (the output does not depend on it)")
        cmd.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
        cmd.add_argument("--keep-going", action="store_true", help="in a folder, go on past a failed file (exit code 2 at the end)")
        cmd.add_argument("--jobs", "-j", type=_positive, default=1,
                         help="files coded at once in separate processes (a folder; each file's bytes do not change)")
        cmd.add_argument("--quiet", action="store_true", help="no progress bars")
        cmd.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                         help="code each file as a task on a Ray cluster (ADDRESS, e.g. auto or ray://head:10001; "
                              "none: a local one on this machine's cores); outputs that exist and verify are "
                              "skipped, so running the command again resumes a stopped run")
        if name == "encode":
            cmd.add_argument("--strip", action="store_true",
                             help="drop metadata (ICC profile, EXIF, XMP, text chunks, TIFF tags); pixels, "
                                  "palette and transparency are always kept")
            cmd.add_argument("--max-pixels", type=int, default=None, metavar="N",
                             help="refuse an image that declares more than N pixels, before decoding it (default: "
                                  "2^28 = 268,435,456; 0: no limit); larger images are coded in bands with bounded memory")
            cmd.add_argument("--no-fallback", action="store_true",
                             help="always keep the model's stream (default: keep lossless WebP or JPEG-XL where it is "
                                  "smaller, as on flat synthetic images, and the input file's own bytes where every "
                                  "coded stream is larger than the file, as for a JPEG)")
    export = commands.add_parser("export", help="turn a trained checkpoint (train.py's final/) into a codec bundle")
    export.add_argument("checkpoint", type=Path)
    export.add_argument("output", type=Path)
    export.add_argument("--precision", type=int, default=16, help="bits of the integer probability tables (8..24)")
    export.add_argument("--quantize", choices=("none", "int8", "integer"), default="none",
                        help="int8: weight-only int8, one scale per row (~4x smaller; decoded in float32, bit-exact "
                             "on the same machine kind); integer: context bundles coded in integer arithmetic, "
                             "streams that decode bit-exactly on any machine (needs --calibrate)")
    export.add_argument("--calibrate", type=Path, nargs="+", default=None,
                        help="--quantize integer: training images (files or folders, 16 used) whose crops set the "
                             "activation grids")
    export.add_argument("--images", type=Path, default=None,
                        help="measure the model card's validation bpsp on patches of these images "
                             "(default: the checkpoint's metrics.json)")
    export.add_argument("--val-patches", type=int, default=16, help="random patches per image for --images")
    shipped = Adaptation()  # the defaults: the shipped bundles' settings
    export.add_argument("--adapt-block", type=int, default=None,
                        help="context bundles: online adaptation, Adam steps after every N coded pixels "
                             f"(default {shipped.block}; 0 turns it off; LM bundles: off)")
    export.add_argument("--adapt-lr", type=float, default=shipped.lr, help="learning rate of the online adaptation")
    export.add_argument("--adapt-steps", type=int, default=shipped.steps,
                        help="Adam steps per block of the online adaptation")
    export.add_argument("--adapt-delay", type=int, choices=(0, 1), default=shipped.delay,
                        help="1: each block's adaptation runs on a second core while the next block is coded "
                             "(its weights arrive one block late)")
    export.add_argument("--adapt-every", type=int, default=shipped.every,
                        help="train on every k-th pixel of a block only (the adaptation costs 1/k)")
    online = commands.add_parser("export-online", help="write an online-engine bundle (no network, no training)")
    online.add_argument("preset", choices=("fast", "max"), help="fast: integer LMS; max: least squares, fewer bits")
    online.add_argument("output", type=Path)
    online.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change one engine setting (trainer/engine/settings.py), e.g. --set stripe_rows=256")
    poc = commands.add_parser("poc", help="proof of concept on your images: adapt the codec on some, bench it "
                                          "against the shipped bundles and classical codecs on the rest, with cost")
    poc.add_argument("folder", type=Path)
    poc.add_argument("--out", type=Path, required=True, help="report folder (must be new or empty)")
    poc.add_argument("--budget-minutes", type=float, default=10.0,
                     help="CPU minutes for adapting the codec: half for its settings, half for training its network")
    poc.add_argument("--storage-price", type=float, default=0.023, help="USD per GB-month")
    poc.add_argument("--transfer-price", type=float, default=0.09, help="USD per GB sent")
    poc.add_argument("--compute-price", type=float, default=0.05, help="USD per core-hour")
    poc.add_argument("--quiet", action="store_true", help="no progress bars")
    info = commands.add_parser("info", help="what .pxl files hold (size, depth, bundle, metadata, bpsp), no model loaded")
    info.add_argument("files", type=Path, nargs="+")
    info.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    fetch = commands.add_parser("download", help="download an image set listed in a manifest, checksum-verified")
    fetch.add_argument("manifest", help="name in data/manifests (e.g. kodak) or a manifest .json path")
    fetch.add_argument("--dest", type=Path, required=True, help="folder to write the images to")
    from trainer.bench.options import add_parser as add_bench_parser

    add_bench_parser(commands)
    args = parser.parse_args(argv)
    if getattr(args, "bundle", None) and not _resolve_bundles(args):
        return 2
    if args.command == "info":
        return _info(args)
    from trainer.codec.jobs import plan

    if args.command not in ("encode", "decode"):  # encode/decode: where an LM bundle loads (_Coder)
        _quiet_transformers()
    if args.command == "bench":
        from trainer.bench.run import command as bench

        try:
            return bench(args, argv)
        except ModuleNotFoundError as err:  # only several processes (torchrun: WORLD_SIZE > 1) meet through torch
            if (err.name or "").split(".")[0] != "torch":
                raise
            print("pixlm: error: pixlm bench in several processes (WORLD_SIZE > 1) needs torch: "
                  "pip install 'pixlm[train]'", file=sys.stderr)
            return 2
    try:
        if args.command == "download":
            from trainer.train.download import download, load_manifest

            manifest = load_manifest(args.manifest)
            paths = download(manifest, args.dest, progress=lambda p: print(f"verified {p}", file=sys.stderr))
            print(f"{len(paths)} files in {args.dest}, all sha256-verified")
        elif args.command == "export":
            from trainer.codec.bundle import model_kind
            from trainer.export import export_bundle

            block = args.adapt_block
            if block is None:
                block = Adaptation.block if model_kind(args.checkpoint) == "context" and args.quantize != "int8" else 0
            adaptation = Adaptation(block, args.adapt_lr, args.adapt_steps, args.adapt_delay, args.adapt_every) if block else None
            bundle = export_bundle(args.checkpoint, args.output, args.precision, quantize=args.quantize,
                                   images=args.images, val_patches=args.val_patches, adaptation=adaptation,
                                   calibrate=args.calibrate)
            print(f"bundle {bundle.path} (id {bundle.bundle_id[:16]}, precision {bundle.precision} bits, "
                  f"weights {'float32' if bundle.quantization == 'none' else bundle.quantization})")
        elif args.command == "poc":
            from trainer.poc import run as poc

            return poc(args)
        elif args.command == "export-online":
            from trainer.codec.bundle import BundleError
            from trainer.export import export_online

            overrides = {}
            for item in args.overrides:
                key, sep, value = item.partition("=")
                if not sep or not value.lstrip("-").isdigit():
                    raise BundleError(f"--set {item}: KEY=INTEGER")
                overrides[key] = int(value)
            bundle = export_online(args.output, args.preset, overrides)
            print(f"bundle {bundle.path} (id {bundle.bundle_id[:16]}, online engine, preset {args.preset})")
        elif args.ray:
            from trainer.codec import cluster
            from trainer.codec.jobs import STD, JobError

            if STD in (args.input, output_of(args)):
                raise JobError("--ray codes files and folders, not standard input or output")
            return cluster.run(args, plan(args.command, args.input, output_of(args), force=True))
        else:
            pairs = plan(args.command, args.input, output_of(args), args.force)  # every output checked before any work
            return _code_all(args, pairs)
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        if not isinstance(err, codec_errors()):
            raise
        print(f"pixlm: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

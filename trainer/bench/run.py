"""`pixlm bench`: every bundle against PNG, WebP, JPEG-XL, JPEG 2000 and JPEG-LS on the same images, in one run.

For every image of every `--data` folder (a "set"), each bundle really encodes a `.pxl` file and
decodes it, each baseline really encodes bytes and decodes them, and every decode is compared with
the original pixels; a mismatch or an exception is a recorded failure, never a crash. Each finished
(image, codec) pair is appended at once to REPORT_DIR/results.jsonl (one JSON object a line), so an
interrupted run keeps what it measured and `--resume` skips it. At the end the main process writes
report.json (schema: docs/BENCH.md), report.md, pareto.png and heatmap_<set>.png (trainer/report.py).

Several processes: under `torchrun --nproc_per_node N` (RANK / WORLD_SIZE set) image i goes to
rank i % N; each rank appends to its own results.rank<R>.jsonl, and after a gloo barrier rank 0
merges those into results.jsonl and writes the one report.
"""

import json
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from trainer.bench.cost import load_prices
from trainer.bench.measure import PeakMemory, error_line, bench_baseline, bench_bundle, center_crop, load_codec
from trainer.bench.options import BenchError, parse_crop, parse_variants
from trainer.bench.summary import build_report, pair_key
from trainer.images.files import IMAGE_SUFFIXES

RESULTS = "results.jsonl"


def _unique(name: str, taken: set) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    taken.add(out)
    return out


@dataclass
class Job:
    set: str
    image: str  # path relative to the set folder
    path: Path
    index: int  # position in the set (0: the heat-map image)


def collect_jobs(data: list[Path], limit: int | None) -> tuple[list[dict], list[Job]]:
    from trainer.images.files import image_files

    if limit is not None and limit < 1:
        raise BenchError(f"--limit {limit}: must be >= 1")
    sets, jobs, taken = [], [], set()
    for folder in data:
        if not Path(folder).is_dir():
            raise BenchError(f"--data {folder}: no such folder")
        files = image_files(folder)
        if not files:
            raise BenchError(f"--data {folder}: holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        files = files[:limit] if limit else files
        name = _unique(re.sub(r"[^A-Za-z0-9_.-]", "_", Path(folder).resolve().name) or "set", taken)
        sets.append({"name": name, "path": str(folder), "images": len(files)})
        jobs += [Job(name, p.relative_to(folder).as_posix(), p, i) for i, p in enumerate(files)]
    return sets, jobs


# -- results file ----------------------------------------------------------------------------------
def result_files(out: Path) -> list[Path]:
    return [p for p in [out / RESULTS, *sorted(out.glob("results.rank*.jsonl"))] if p.is_file()]


def read_results(out: Path) -> list[dict]:
    """Every complete line of results.jsonl and of unmerged rank files (a torn last line is skipped)."""
    records = []
    for path in result_files(out):
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


# -- the run ---------------------------------------------------------------------------------------
def _dist():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=timedelta(days=2))
    return rank, world


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def run(data: list[Path], bundles: list[Path], baselines: str | list[str] | None, out: Path, limit: int | None = None,
        crop: str | None = None, resume: bool = False, threads: int | None = None, batch_size: int = 256,
        decode_variants: str | None = None, cost: str | None = None, progress: bool = True,
        hooks: dict | None = None, argv: list[str] | None = None, paq8px: str | None = None,
        files: bool = False) -> dict | None:
    """Run the benchmark; the report dict on the main process (None on other ranks).

    paq8px: the paq8px program for the `paq8px` / `paq8px-N` baselines (else $PIXLM_PAQ8PX, else PATH);
    where none is found those baselines are skipped with one line on stderr (kept in config.skipped).

    files: each input is coded as a file and must come back byte for byte (a JPEG set): bundles encode
    the file itself (`pixlm encode photo.jpg`), baselines are file recompressors (`lepton`,
    `jpegxl-jpeg`; None: both), each record has the file's size (`input_bytes`) and `ratio` to it.

    hooks (tests only): {'after_encode': fn(stream_path)} runs between a bundle's encode and decode.
    """
    from trainer import cpu
    from trainer.bench.baselines import get_baselines, get_file_baselines

    # Everything a user can get wrong is checked before any work (and before processes meet).
    crop_size = parse_crop(crop)
    if files and crop_size is not None:
        raise BenchError("--crop with --files: a file's crop is another file; the files are coded whole")
    variants = parse_variants(decode_variants)
    if files and any("batch" in v for v in variants):
        raise BenchError("--decode-variants with --files: only threads= (file streams have no batches)")
    prices = load_prices(cost)
    skipped = []
    base = (get_file_baselines(baselines, skipped=skipped) if files
            else get_baselines(baselines, paq8px=paq8px, skipped=skipped))
    if int(os.environ.get("RANK", "0")) == 0:
        for line in skipped:
            print(line, file=sys.stderr)
    for folder in bundles:
        if not Path(folder).is_dir():
            raise BenchError(f"--bundle {folder}: no such folder")
    if not bundles and not base:
        raise BenchError("nothing to benchmark: give --bundle DIR and/or --baselines")
    if threads is not None and threads < 1:
        raise BenchError(f"--threads {threads}: must be >= 1")
    sets, jobs = collect_jobs(data, limit)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hooks = hooks or {}

    rank, world = _dist()
    # threads: trainer.cpu's setting (torch's too where torch is loaded: network bundles); no torch
    # is imported for the online bundles and the baselines, so the bench runs in a torch-free install
    setting_before, threads_before = cpu.threads_setting(), cpu.get_threads()
    try:
        return _run(data, bundles, base, out, sets, jobs, crop_size, variants, prices, resume, rank, world,
                    threads or threads_before, batch_size, limit, progress, hooks, argv, skipped, files)
    finally:
        cpu.set_threads(threads_before)  # torch's count back where torch is loaded
        cpu.set_threads(setting_before)
        if world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _file_shape(data: bytes, name: str) -> dict:
    """width, height, channels and subpixels of an input file (--files): a JPEG as libjpeg reads its
    every scan (a damaged one is refused), another file as pixlm reads its picture."""
    from trainer.codec import jpeg
    from trainer.images.picture import picture_of_bytes

    if jpeg.is_jpeg(data):
        shape = jpeg.examine(data, name)
        width, height, channels = shape.width, shape.height, shape.channels
    else:
        height, width, channels = picture_of_bytes(data, name).samples.shape
    return {"width": width, "height": height, "channels": channels, "subpixels": width * height * channels}


def _run(data, bundles, base, out, sets, jobs, crop_size, variants, prices, resume, rank, world, threads,
         batch_size, limit, progress, hooks, argv, skipped=(), files=False):
    from tqdm.auto import tqdm

    from trainer.cpu import set_threads
    from trainer.images.files import load_samples

    set_threads(threads)
    if rank == 0 and not resume:
        for path in result_files(out):
            path.unlink()
        for path in (out / "maps").glob("*.npy") if (out / "maps").is_dir() else []:
            path.unlink()
    if rank == 0:  # an interrupted write leaves a torn last line: drop it before anything is appended
        for path in result_files(out):
            text = path.read_bytes()
            if text and not text.endswith(b"\n"):
                path.write_bytes(text[:text.rfind(b"\n") + 1])
    _barrier(world)

    taken = set(b.name for b in base)
    entries = []
    for folder in bundles:
        entry = {"name": _unique(Path(folder).resolve().name, taken), "path": str(folder), "kind": "bundle"}
        start = time.perf_counter()
        try:
            entry["codec"] = load_codec(folder, batch_size, threads)
            entry["bundle_id"] = entry["codec"].bundle.bundle_id
            entry["load_seconds"] = round(time.perf_counter() - start, 3)
        except Exception as err:  # noqa: BLE001 - a broken bundle is a failed codec, not a crashed run
            entry["codec"], entry["load_error"] = None, error_line(err)
        entries.append(entry)
    crop_text = f"{crop_size[0]}x{crop_size[1]}" if crop_size else None
    done = {pair_key(r) for r in read_results(out)} if resume else set()
    mine = [job for i, job in enumerate(jobs) if i % world == rank]
    codec_names = [e["name"] for e in entries] + [b.name for b in base]
    todo = sum((job.set, job.image, name, crop_text) not in done for job in mine for name in codec_names)
    results_path = out / (RESULTS if world == 1 else f"results.rank{rank}.jsonl")
    memory = PeakMemory()
    bar = tqdm(total=todo, desc=f"bench{f' rank {rank}' if world > 1 else ''}", unit="pair",
               disable=not progress, position=rank, leave=True)
    with open(results_path, "a") as results:
        for job in mine:
            pending = [n for n in codec_names if (job.set, job.image, n, crop_text) not in done]
            if not pending:
                continue
            head = {"set": job.set, "image": job.image, "crop": crop_text, "rank": rank, "threads": threads}
            if files:
                _run_file(job, pending, head, entries, base, out, threads, variants, memory, results, bar)
                continue
            try:
                array = center_crop(load_samples(job.path), crop_size)
            except Exception as err:  # noqa: BLE001 - an unreadable image fails every codec on it
                _fail_all(results, head, pending, err, bar)
                continue
            head.update(width=array.shape[1], height=array.shape[0], channels=array.shape[2], subpixels=array.size)
            heat = job.index == 0
            if heat:
                (out / "maps").mkdir(exist_ok=True)
                np.save(out / "maps" / f"{job.set}__image.npy", array)
            for name in pending:
                bar.set_postfix_str(f"{job.image} {name}")
                entry = next((e for e in entries if e["name"] == name), None)
                if entry is not None:
                    stream = out / "streams" / job.set / name / (Path(job.image).with_suffix(".pxl"))
                    rec, bits = bench_bundle(entry, array, stream, threads, variants, memory, heat, hooks)
                    if bits is not None:
                        np.save(out / "maps" / f"{job.set}__{name}.npy", bits)
                    rec = {**head, "codec": name, "kind": "bundle", **rec}
                else:
                    baseline = next(b for b in base if b.name == name)
                    rec = {**head, "codec": name, "kind": "baseline",
                           **bench_baseline(baseline, array, threads, memory)}
                rec["ok"] = "error" not in rec
                if "bytes" in rec:
                    rec["bpsp"] = 8 * rec["bytes"] / array.size
                    if rec.get("model_bpsp"):
                        rec["overhead"] = rec["bpsp"] / rec["model_bpsp"] - 1
                for key in ("encode", "decode"):
                    if rec.get(f"{key}_seconds"):
                        rec[f"{key}_subpixels_per_s"] = array.size / rec[f"{key}_seconds"]
                results.write(json.dumps(rec) + "\n")
                results.flush()
                bar.update(1)
    bar.close()
    _barrier(world)
    if rank != 0:
        return None
    if world > 1:  # merge the rank files into the one results.jsonl
        with open(out / RESULTS, "a") as merged:
            for path in sorted(out.glob("results.rank*.jsonl")):
                merged.write(path.read_text())
                path.unlink()
    codecs = [{"name": e["name"], "kind": "bundle", "path": e["path"], "bundle_id": e.get("bundle_id"),
               "load_seconds": e.get("load_seconds"), "load_error": e.get("load_error"),
               "batch_size": batch_size, "cores_charged": getattr(e.get("codec"), "cores", None) or threads}  # codec None: it did not load
              for e in entries]
    codecs += [{"name": b.name, "kind": "file baseline" if files else "baseline", "description": b.description,
                "cores_charged": threads if b.threaded else 1,
                **({"program": str(b.binary), "version": b.version} if hasattr(b, "binary") else {})}
               for b in base]
    config = {"data": [str(d) for d in data], "bundles": [str(b) for b in bundles],
              "baselines": [b.name for b in base], "limit": limit, "crop": crop_text, "resume": resume,
              "threads": threads, "batch_size": batch_size, "decode_variants": variants, "world_size": world,
              "cost": prices, "skipped": list(skipped), "files": files}
    report = build_report(config, sets, jobs, codecs, read_results(out), memory.method, argv)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    from trainer.bench.report import write_markdown, write_plots

    write_plots(report, out)
    write_markdown(report, out)
    return report


def _fail_all(results, head: dict, pending: list[str], err: BaseException, bar) -> None:
    """An input no codec can read: one failed record per pending codec."""
    for name in pending:
        results.write(json.dumps({**head, "codec": name, "ok": False, "error": f"image: {error_line(err)}"}) + "\n")
        bar.update(1)
    results.flush()


def _run_file(job, pending, head, entries, base, out, threads, variants, memory, results, bar) -> None:
    """Every pending codec of one input file (--files): its bytes coded, decoded and compared byte
    for byte; each record appended to results.jsonl at once."""
    from trainer.bench.measure import bench_bundle_file, bench_file_baseline

    try:
        original = job.path.read_bytes()
        head.update(_file_shape(original, job.image), input_bytes=len(original))
    except Exception as err:  # noqa: BLE001 - an unreadable file fails every codec on it
        _fail_all(results, head, pending, err, bar)
        return
    for name in pending:
        bar.set_postfix_str(f"{job.image} {name}")
        entry = next((e for e in entries if e["name"] == name), None)
        if entry is not None:
            stream = out / "streams" / job.set / name / (Path(job.image).with_suffix(".pxl"))
            rec = {**head, "codec": name, "kind": "bundle",
                   **bench_bundle_file(entry, job.path, original, stream, threads, variants, memory)}
        else:
            baseline = next(b for b in base if b.name == name)
            rec = {**head, "codec": name, "kind": "file baseline",
                   **bench_file_baseline(baseline, original, threads, memory)}
        rec["ok"] = "error" not in rec
        if "bytes" in rec:
            rec["bpsp"] = 8 * rec["bytes"] / head["subpixels"]
            rec["ratio"] = rec["bytes"] / len(original)
        for key in ("encode", "decode"):
            if rec.get(f"{key}_seconds"):
                rec[f"{key}_subpixels_per_s"] = head["subpixels"] / rec[f"{key}_seconds"]
        results.write(json.dumps(rec) + "\n")
        results.flush()
        bar.update(1)


# -- the command -----------------------------------------------------------------------------------
def command(args, argv: list[str] | None = None) -> int:
    from trainer.bench.baselines import BaselineError

    try:
        run(args.data, args.bundle, args.baselines, args.out, limit=args.limit, crop=args.crop, resume=args.resume,
            threads=args.threads, batch_size=args.batch_size, decode_variants=args.decode_variants, cost=args.cost,
            progress=not args.quiet, argv=argv if argv is not None else sys.argv, paq8px=args.paq8px,
            files=args.files)
    except (BenchError, BaselineError) as err:
        print(f"pixlm: error: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"report: {args.out / 'report.md'} ({args.out / 'report.json'})")
    return 0

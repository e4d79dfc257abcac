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
from datetime import datetime, timedelta, timezone
from itertools import product
from pathlib import Path

import numpy as np

from trainer.tokenize.pixels import IMAGE_SUFFIXES

SCHEMA_VERSION = 1
RESULTS = "results.jsonl"
DEFAULT_PRICES = {  # USD; docs/BENCH.md says where they come from
    "storage_usd_per_gb_month": 0.023,
    "transfer_usd_per_gb": 0.09,
    "compute_usd_per_core_hour": 0.05,
}


class BenchError(ValueError):
    """A bad argument or input, reported in one line (exit code 2)."""


# -- arguments ---------------------------------------------------------------------------------------
def add_parser(commands) -> None:
    from trainer.bench.baselines import DEFAULT_BASELINES

    cmd = commands.add_parser("bench", help="bpsp and speed of bundles vs PNG/WebP/JPEG-XL/JPEG 2000/JPEG-LS")
    cmd.add_argument("--data", type=Path, action="append", required=True, help="image folder (a set); repeatable")
    cmd.add_argument("--bundle", type=Path, action="append", default=[], help="codec bundle folder; repeatable")
    cmd.add_argument("--baselines", default=",".join(DEFAULT_BASELINES),
                     help=f"comma-separated, or 'none' (default {','.join(DEFAULT_BASELINES)})")
    cmd.add_argument("--out", type=Path, required=True, help="report folder")
    cmd.add_argument("--limit", type=int, default=None, help="first N images of each set")
    cmd.add_argument("--crop", default=None, help="center crop WxH of every image (smaller images stay whole)")
    cmd.add_argument("--resume", action="store_true", help="keep REPORT_DIR/results.jsonl and skip its pairs")
    cmd.add_argument("--threads", type=int, default=None,
                     help="CPU threads for every codec (default: torch's current count)")
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


def load_prices(spec: str | None) -> dict | None:
    if spec is None:
        return None
    prices = dict(DEFAULT_PRICES)
    if spec != "default":
        import yaml

        path = Path(spec)
        if not path.is_file():
            raise BenchError(f"--cost {spec}: no such file")
        try:
            given = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise BenchError(f"--cost {spec}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(given, dict):
            raise BenchError(f"--cost {spec}: expected a mapping of prices")
        for key, value in given.items():
            if key not in DEFAULT_PRICES:
                raise BenchError(f"--cost {spec}: unknown price {key!r}; known: {', '.join(DEFAULT_PRICES)}")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise BenchError(f"--cost {spec}: {key} must be a non-negative number")
            prices[key] = float(value)
    return prices


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
    from trainer.tokenize.pixels import image_files

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


def center_crop(array: np.ndarray, crop: tuple[int, int] | None) -> np.ndarray:
    if crop is None:
        return array
    height, width = array.shape[:2]
    w, h = min(crop[0], width), min(crop[1], height)
    y, x = (height - h) // 2, (width - w) // 2
    return np.ascontiguousarray(array[y:y + h, x:x + w])


# -- memory ----------------------------------------------------------------------------------------
class PeakMemory:
    """Process peak resident memory (VmHWM) over a step, reset before it via /proc/self/clear_refs.

    What it measures: the whole process's resident set at its highest during the step (Python, torch,
    every loaded bundle, codec libraries), in MB (10^6 bytes); `delta` is that peak minus the resident
    set at the step's start, the extra memory the step needed. Where the reset is not possible (not
    Linux), it falls back to getrusage ru_maxrss, the peak since the process started.
    """

    def __init__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.method = "VmHWM after /proc/self/clear_refs reset (process peak RSS during the step)"
        except OSError:
            self.method = "getrusage ru_maxrss (process peak RSS since start; not reset per step)"

    @staticmethod
    def _status(key: str) -> float | None:
        try:
            match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
            return int(match[1]) * 1024 / 1e6 if match else None
        except OSError:
            return None

    def start(self) -> float | None:
        if self.method.startswith("VmHWM"):
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        return self._status("VmRSS")

    def peak(self, start: float | None) -> dict:
        peak = self._status("VmHWM") if self.method.startswith("VmHWM") else None
        if peak is None:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # kB on Linux
        return {"peak_rss_mb": round(peak, 1),
                "peak_rss_delta_mb": round(peak - start, 1) if start is not None else None}


def load_codec(folder: Path, batch_size: int, threads: int):
    """The codec of a bundle folder (the one place to add other bundle kinds)."""
    from trainer.codec.bundle import open_bundle
    from trainer.codec.registry import open_codec

    # threads=None: the codec follows the bench's own setting (the decode variants change it).
    return open_codec(open_bundle(folder), batch_size=batch_size, threads=None, progress=False)


# -- one (image, codec) pair -------------------------------------------------------------------------
def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".strip()


def bench_bundle(entry: dict, array: np.ndarray, stream: Path, threads: int, variants: list[dict],
                 memory: PeakMemory, bits_map: bool, hooks: dict) -> tuple[dict, np.ndarray | None]:
    import torch

    from trainer.tokenize.pixels import to_image

    rec = {"decodes_tried": 0, "decodes_exact": 0}
    if entry.get("codec") is None:
        rec["error"] = f"bundle did not load: {entry['load_error']}"
        return rec, None
    codec = entry["codec"]
    torch.set_num_threads(threads)
    stream.parent.mkdir(parents=True, exist_ok=True)
    try:
        mem = memory.start()
        report = codec.encode(to_image(array), stream, bits_map=bits_map)
        rec.update(encode_seconds=report.seconds, encode_memory=memory.peak(mem))
        rec["bytes"] = stream.stat().st_size
        rec["model_bpsp"] = report.model_bpsp
        rec["fallback"] = report.fallback  # the stream is lossless WebP (trainer.codec.fallback)
    except Exception as err:  # noqa: BLE001 - any failure is a result
        rec["error"] = f"encode: {_error(err)}"
        return rec, None
    if hooks.get("after_encode"):
        hooks["after_encode"](stream)
    default_batch = getattr(codec, "batch_size", None)  # a codec without one ignores batch= variants
    runs = [{"threads": threads, "batch": default_batch}] + [
        {"threads": v.get("threads", threads), "batch": v.get("batch", default_batch)} for v in variants]
    rec["variants"] = []
    for i, run in enumerate(runs):
        torch.set_num_threads(run["threads"])
        if default_batch is not None:
            codec.batch_size = run["batch"]
        out = dict(run)
        try:
            mem = memory.start()
            decoded, back = codec.decode(stream)
            out["seconds"] = back.seconds
            out["exact"] = bool(decoded.shape == array.shape and np.array_equal(decoded, array))
            if i == 0:
                rec["decode_memory"] = memory.peak(mem)
            if not out["exact"]:
                out["error"] = "decoded pixels differ from the original"
        except Exception as err:  # noqa: BLE001
            out["exact"], out["error"] = False, _error(err)
        finally:
            if default_batch is not None:
                codec.batch_size = default_batch
            torch.set_num_threads(threads)
        rec["decodes_tried"] += 1
        rec["decodes_exact"] += out["exact"]
        if i == 0:
            rec["decode_seconds"] = out.get("seconds")
            if not out["exact"]:
                rec["error"] = f"decode: {out['error']}"
        else:
            rec["variants"].append(out)
    if rec["decodes_exact"] < rec["decodes_tried"] and "error" not in rec:
        bad = next(v for v in rec["variants"] if not v["exact"])
        rec["error"] = f"decode variant threads={bad['threads']} batch={bad['batch']}: {bad['error']}"
    return rec, report.bits


def bench_baseline(baseline, array: np.ndarray, threads: int, memory: PeakMemory) -> dict:
    rec = {"decodes_tried": 1, "decodes_exact": 0}
    try:
        mem = memory.start()
        start = time.perf_counter()
        data = baseline.encode(array, threads)
        rec["encode_seconds"] = time.perf_counter() - start
        rec["encode_memory"] = memory.peak(mem)
        rec["bytes"] = len(data)
    except Exception as err:  # noqa: BLE001
        rec["error"] = f"encode: {_error(err)}"
        return rec
    try:
        mem = memory.start()
        start = time.perf_counter()
        decoded = baseline.decode(data, array, threads)
        rec["decode_seconds"] = time.perf_counter() - start
        rec["decode_memory"] = memory.peak(mem)
        if decoded.shape == array.shape and np.array_equal(decoded, array):
            rec["decodes_exact"] = 1
        else:
            rec["error"] = f"decode: decoded pixels differ from the original (shape {decoded.shape} vs {array.shape})"
    except Exception as err:  # noqa: BLE001
        rec["error"] = f"decode: {_error(err)}"
    return rec


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


def pair_key(rec: dict) -> tuple:
    return rec["set"], rec["image"], rec["codec"], rec.get("crop")


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


def run(data: list[Path], bundles: list[Path], baselines: str | list[str], out: Path, limit: int | None = None,
        crop: str | None = None, resume: bool = False, threads: int | None = None, batch_size: int = 256,
        decode_variants: str | None = None, cost: str | None = None, progress: bool = True,
        hooks: dict | None = None, argv: list[str] | None = None) -> dict | None:
    """Run the benchmark; the report dict on the main process (None on other ranks).

    hooks (tests only): {'after_encode': fn(stream_path)} runs between a bundle's encode and decode.
    """
    import torch

    from trainer.bench.baselines import get_baselines

    # Everything a user can get wrong is checked before any work (and before processes meet).
    crop_size = parse_crop(crop)
    variants = parse_variants(decode_variants)
    prices = load_prices(cost)
    base = get_baselines(baselines)
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
    threads_before = torch.get_num_threads()
    try:
        return _run(data, bundles, base, out, sets, jobs, crop_size, variants, prices, resume, rank, world,
                    threads or threads_before, batch_size, limit, progress, hooks, argv)
    finally:
        torch.set_num_threads(threads_before)
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _run(data, bundles, base, out, sets, jobs, crop_size, variants, prices, resume, rank, world, threads,
         batch_size, limit, progress, hooks, argv):
    import torch
    from tqdm.auto import tqdm

    from trainer.tokenize.pixels import load_image

    torch.set_num_threads(threads)
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
            entry["codec"], entry["load_error"] = None, _error(err)
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
            try:
                array = center_crop(load_image(job.path), crop_size)
            except Exception as err:  # noqa: BLE001 - an unreadable image fails every codec on it
                for name in pending:
                    results.write(json.dumps({**head, "codec": name, "ok": False, "error": f"image: {_error(err)}"}) + "\n")
                    bar.update(1)
                results.flush()
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
    codecs += [{"name": b.name, "kind": "baseline", "description": b.description,
                "cores_charged": threads if b.threaded else 1} for b in base]
    config = {"data": [str(d) for d in data], "bundles": [str(b) for b in bundles],
              "baselines": [b.name for b in base], "limit": limit, "crop": crop_text, "resume": resume,
              "threads": threads, "batch_size": batch_size, "decode_variants": variants, "world_size": world,
              "cost": prices}
    report = build_report(config, sets, jobs, codecs, read_results(out), memory.method, argv)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    from trainer.bench.report import write_markdown, write_plots

    write_plots(report, out)
    write_markdown(report, out)
    return report


# -- the report ------------------------------------------------------------------------------------
def _machine() -> dict:
    import platform

    import torch

    from trainer.bench.baselines import library_versions

    cpu = platform.processor()
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match[1] if match else cpu
    except OSError:
        pass
    # The kernel level torch dispatches to (AVX2, AVX512, ...): streams are bit-exact between machines
    # that share it and the torch version.
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "python": platform.python_version(), "torch": torch.__version__, "libraries": library_versions()}


def cost_of(totals: dict, cores: int, prices: dict) -> dict:
    gigabytes = totals["bytes"] / 1e9
    core_hours = cores / 3600
    return {
        "cores_charged": cores,
        "storage_year_usd": gigabytes * prices["storage_usd_per_gb_month"] * 12,
        "transfer_once_usd": gigabytes * prices["transfer_usd_per_gb"],
        "encode_compute_usd": totals["encode_seconds"] * core_hours * prices["compute_usd_per_core_hour"],
        "decode_compute_usd": totals["decode_seconds"] * core_hours * prices["compute_usd_per_core_hour"],
    }


def break_even(cost: dict, ref: dict, totals: dict, ref_totals: dict, prices: dict) -> dict:
    """Reads / months until this codec's smaller files pay for its extra coding cost vs the reference.

    extra = encode_compute - ref encode_compute (once). One read = send the files once + decode them once:
    saving per read = transfer_once(ref) - transfer_once - (decode_compute - ref decode_compute).
    Storage: saving per month = (ref bytes - bytes) in GB x storage price. Result: 0 when the codec costs
    no more to encode and saves (or breaks even) per read/month; 'never' when it saves nothing per
    read/month; otherwise extra / saving.
    """
    extra = cost["encode_compute_usd"] - ref["encode_compute_usd"]
    per_read = (ref["transfer_once_usd"] - cost["transfer_once_usd"]) - (
        cost["decode_compute_usd"] - ref["decode_compute_usd"])
    per_month = (ref_totals["bytes"] - totals["bytes"]) / 1e9 * prices["storage_usd_per_gb_month"]

    def ratio(saving):
        if extra <= 0 and saving >= 0:
            return 0
        if saving <= 0:
            return "never"
        return extra / saving

    return {"extra_encode_usd": extra, "saving_per_read_usd": per_read, "saving_per_month_usd": per_month,
            "break_even_reads": ratio(per_read), "break_even_months": ratio(per_month)}


def _totals(records: list[dict]) -> dict:
    ok = [r for r in records if r.get("ok")]
    subpixels = sum(r["subpixels"] for r in ok)
    out = {"images_tried": len(records), "images_ok": len(ok), "subpixels": subpixels,
           "bytes": sum(r["bytes"] for r in ok), "encode_seconds": sum(r["encode_seconds"] for r in ok),
           "decode_seconds": sum(r["decode_seconds"] for r in ok),
           "decodes_tried": sum(r.get("decodes_tried", 0) for r in records),
           "decodes_exact": sum(r.get("decodes_exact", 0) for r in records),
           "failures": [{"image": r["image"], "error": r.get("error")} for r in records if not r.get("ok")]}
    out["bits"] = 8 * out["bytes"]
    out["bpsp"] = out["bits"] / subpixels if subpixels else None
    model = [r for r in ok if r.get("model_bpsp") is not None]
    if model and len(model) == len(ok):
        out["model_bpsp"] = sum(r["model_bpsp"] * r["subpixels"] for r in ok) / subpixels
        out["overhead"] = out["bpsp"] / out["model_bpsp"] - 1
    for key in ("encode", "decode"):
        out[f"{key}_subpixels_per_s"] = subpixels / out[f"{key}_seconds"] if out[f"{key}_seconds"] else None
        peaks = [r[f"{key}_memory"] for r in ok if r.get(f"{key}_memory")]
        out[f"{key}_peak_rss_mb"] = max((m["peak_rss_mb"] for m in peaks), default=None)
        out[f"{key}_peak_rss_delta_mb"] = max((m["peak_rss_delta_mb"] or 0 for m in peaks), default=None)
    return out


def build_report(config: dict, sets: list[dict], jobs: list[Job], codecs: list[dict], records: list[dict],
                 memory_method: str, argv: list[str] | None = None) -> dict:
    from trainer.bench.baselines import REFERENCE

    wanted = {(j.set, j.image, c["name"], config["crop"]) for j in jobs for c in codecs}
    latest = {}
    for rec in records:
        if pair_key(rec) in wanted:
            latest[pair_key(rec)] = rec  # the last line for a pair wins
    images = sorted(latest.values(), key=lambda r: ([s["name"] for s in sets].index(r["set"]), r["image"],
                                                    [c["name"] for c in codecs].index(r["codec"])))
    ref_by_image = {(r["set"], r["image"]): r for r in images if r["codec"] == REFERENCE and r.get("ok")}
    for rec in images:
        ref = ref_by_image.get((rec["set"], rec["image"]))
        for key in ("encode", "decode"):
            rec[f"{key}_speed_vs_ref"] = (rec[f"{key}_subpixels_per_s"] / ref[f"{key}_subpixels_per_s"]
                                          if ref and rec.get("ok") else None)
    prices = config["cost"]
    out_sets = []
    for s in sets:
        entry = dict(s)
        entry["images_done"] = len({r["image"] for r in images if r["set"] == s["name"]})
        entry["codecs"] = {}
        for c in codecs:
            entry["codecs"][c["name"]] = _totals([r for r in images if r["set"] == s["name"] and r["codec"] == c["name"]])
        ref = entry["codecs"].get(REFERENCE)
        for name, totals in entry["codecs"].items():
            for key in ("encode", "decode"):
                ok = ref and ref[f"{key}_subpixels_per_s"] and totals[f"{key}_subpixels_per_s"]
                totals[f"{key}_speed_vs_ref"] = (totals[f"{key}_subpixels_per_s"] / ref[f"{key}_subpixels_per_s"]
                                                 if ok else None)
        if prices:
            cores = {c["name"]: c["cores_charged"] for c in codecs}
            for name, totals in entry["codecs"].items():
                totals["cost"] = cost_of(totals, cores[name], prices) if totals["images_ok"] else None
            if ref and ref["images_ok"]:
                for name, totals in entry["codecs"].items():
                    if totals["cost"] and name != REFERENCE:
                        totals["cost"].update(break_even(totals["cost"], ref["cost"], totals, ref, prices))
        out_sets.append(entry)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": argv,
        "reference_codec": REFERENCE,
        "memory_method": memory_method,
        "machine": _machine(),
        "config": config,
        "codecs": codecs,
        "sets": out_sets,
        "images": images,
    }


# -- the command -----------------------------------------------------------------------------------
def command(args, argv: list[str] | None = None) -> int:
    from trainer.bench.baselines import BaselineError

    try:
        run(args.data, args.bundle, args.baselines, args.out, limit=args.limit, crop=args.crop, resume=args.resume,
            threads=args.threads, batch_size=args.batch_size, decode_variants=args.decode_variants, cost=args.cost,
            progress=not args.quiet, argv=argv if argv is not None else sys.argv)
    except (BenchError, BaselineError) as err:
        print(f"pixlm: error: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"report: {args.out / 'report.md'} ({args.out / 'report.json'})")
    return 0

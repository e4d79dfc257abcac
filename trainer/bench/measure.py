"""One (image, codec) pair of `pixlm bench`: encode, decode, compare every pixel, time it and
measure the process's peak memory. A failure is a result, never a crash."""

import re
import time
from pathlib import Path

import numpy as np


def center_crop(array: np.ndarray, crop: tuple[int, int] | None) -> np.ndarray:
    if crop is None:
        return array
    height, width = array.shape[:2]
    w, h = min(crop[0], width), min(crop[1], height)
    y, x = (height - h) // 2, (width - w) // 2
    return np.ascontiguousarray(array[y:y + h, x:x + w])


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
    """The codec of a bundle folder (its kind in trainer.codec.kinds names the class)."""
    from trainer.codec.bundle import open_bundle
    from trainer.codec.registry import open_codec

    # threads=None: the codec follows the bench's own setting (the decode variants change it).
    return open_codec(open_bundle(folder), batch_size=batch_size, threads=None, progress=False)


def error_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".strip()


def bench_bundle(entry: dict, array: np.ndarray, stream: Path, threads: int, variants: list[dict],
                 memory: PeakMemory, bits_map: bool, hooks: dict) -> tuple[dict, np.ndarray | None]:
    from trainer.cpu import set_threads  # torch's threads too, where a network bundle loaded torch

    rec = {"decodes_tried": 0, "decodes_exact": 0}
    if entry.get("codec") is None:
        rec["error"] = f"bundle did not load: {entry['load_error']}"
        return rec, None
    codec = entry["codec"]
    set_threads(threads)
    stream.parent.mkdir(parents=True, exist_ok=True)
    try:
        mem = memory.start()
        report = codec.encode(array, stream, bits_map=bits_map)
        rec.update(encode_seconds=report.seconds, encode_memory=memory.peak(mem))
        rec["bytes"] = stream.stat().st_size
        rec["model_bpsp"] = report.model_bpsp
        rec["fallback"] = report.fallback  # the stream is lossless WebP (trainer.codec.fallback)
        rec["representation"] = report.representation  # model, webp-lossless, planes / split16 / jxl (+...)
    except Exception as err:  # noqa: BLE001 - any failure is a result
        rec["error"] = f"encode: {error_line(err)}"
        return rec, None
    if hooks.get("after_encode"):
        hooks["after_encode"](stream)
    default_batch = getattr(codec, "batch_size", None)  # a codec without one ignores batch= variants
    runs = [{"threads": threads, "batch": default_batch}] + [
        {"threads": v.get("threads", threads), "batch": v.get("batch", default_batch)} for v in variants]
    rec["variants"] = []
    for i, run in enumerate(runs):
        set_threads(run["threads"])
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
            out["exact"], out["error"] = False, error_line(err)
        finally:
            if default_batch is not None:
                codec.batch_size = default_batch
            set_threads(threads)
        _tally(rec, out, first=i == 0)
    _variant_error(rec, lambda bad: f"threads={bad['threads']} batch={bad['batch']}")
    return rec, report.bits


def _tally(rec: dict, out: dict, first: bool) -> None:
    """Count one decode: the first is the record's own, the others its variants."""
    rec["decodes_tried"] += 1
    rec["decodes_exact"] += out["exact"]
    if first:
        rec["decode_seconds"] = out.get("seconds")
        if not out["exact"]:
            rec["error"] = f"decode: {out['error']}"
    else:
        rec["variants"].append(out)


def _variant_error(rec: dict, describe) -> None:
    """Name the first inexact variant where the first decode was exact."""
    if rec["decodes_exact"] < rec["decodes_tried"] and "error" not in rec:
        bad = next(v for v in rec["variants"] if not v["exact"])
        rec["error"] = f"decode variant {describe(bad)}: {bad['error']}"


def _baseline_peak(baseline, memory: PeakMemory, start: float | None) -> dict:
    """The step's memory; for a baseline run as its own program (paq8px), its child process's peak
    RSS (`child_peak_rss_mb`) is added to the peak and to the extra (an upper bound of both)."""
    out = memory.peak(start)
    child = getattr(baseline, "child_peak_mb", None)
    if child is not None:
        out = {"peak_rss_mb": round(out["peak_rss_mb"] + child, 1),
               "peak_rss_delta_mb": round((out["peak_rss_delta_mb"] or 0) + child, 1), "child_peak_rss_mb": child}
    return out


def bench_baseline(baseline, array: np.ndarray, threads: int, memory: PeakMemory) -> dict:
    rec = {"decodes_tried": 1, "decodes_exact": 0}
    try:
        mem = memory.start()
        start = time.perf_counter()
        data = baseline.encode(array, threads)
        rec["encode_seconds"] = time.perf_counter() - start
        rec["encode_memory"] = _baseline_peak(baseline, memory, mem)
        rec["bytes"] = len(data)
    except Exception as err:  # noqa: BLE001
        rec["error"] = f"encode: {error_line(err)}"
        return rec
    try:
        mem = memory.start()
        start = time.perf_counter()
        decoded = baseline.decode(data, array, threads)
        rec["decode_seconds"] = time.perf_counter() - start
        rec["decode_memory"] = _baseline_peak(baseline, memory, mem)
        if decoded.shape == array.shape and np.array_equal(decoded, array):
            rec["decodes_exact"] = 1
        else:
            rec["error"] = f"decode: decoded pixels differ from the original (shape {decoded.shape} vs {array.shape})"
    except Exception as err:  # noqa: BLE001
        rec["error"] = f"decode: {error_line(err)}"
    return rec



# -- --files: each input coded as a file and restored byte for byte (a JPEG set) --------------------
def bench_bundle_file(entry: dict, path: Path, original: bytes, stream: Path, threads: int, variants: list[dict],
                      memory: PeakMemory) -> dict:
    """A bundle on one input file (`pixlm encode photo.jpg`, `pixlm decode photo.pxl`): the stream's
    size and representation (jpeg, file, ...) and coder, every decode's file compared byte for byte
    with the input (decode variants: threads only). A failure is a result."""
    from trainer.codec.info import stream_info
    from trainer.cpu import set_threads

    rec = {"decodes_tried": 0, "decodes_exact": 0}
    if entry.get("codec") is None:
        rec["error"] = f"bundle did not load: {entry['load_error']}"
        return rec
    codec = entry["codec"]
    set_threads(threads)
    stream.parent.mkdir(parents=True, exist_ok=True)
    try:
        mem = memory.start()
        report = codec.encode(path, stream)
        rec.update(encode_seconds=report.seconds, encode_memory=memory.peak(mem))
        rec["bytes"] = stream.stat().st_size
        rec["representation"] = report.representation  # jpeg (recoded), file (kept whole), or a pixel stream
        kept = stream_info(stream.read_bytes()).get("kept_file")
        rec["coder"] = kept["coder"] if kept else None  # lepton, jpegxl; stored, zlib, lzma, zlib+jpeg-tables
    except Exception as err:  # noqa: BLE001 - any failure is a result
        rec["error"] = f"encode: {error_line(err)}"
        return rec
    back = stream.with_name(f".{stream.stem}.back")
    rec["variants"] = []
    for i, run_threads in enumerate([threads] + [v.get("threads", threads) for v in variants]):
        set_threads(run_threads)
        out = {"threads": run_threads}
        try:
            mem = memory.start()
            _, decoded = codec.decode(stream, back, samples=False)
            out["seconds"] = decoded.seconds
            out["exact"] = back.read_bytes() == original
            if i == 0:
                rec["decode_memory"] = memory.peak(mem)
            if not out["exact"]:
                out["error"] = "the decoded file differs from the input file"
        except Exception as err:  # noqa: BLE001
            out["exact"], out["error"] = False, error_line(err)
        finally:
            back.unlink(missing_ok=True)
            set_threads(threads)
        _tally(rec, out, first=i == 0)
    _variant_error(rec, lambda bad: f"threads={bad['threads']}")
    return rec


def bench_file_baseline(baseline, original: bytes, threads: int, memory: PeakMemory) -> dict:
    """A file recompressor (Lepton, JPEG-XL's JPEG transcoding) on one file's bytes, its decode
    compared byte for byte with the file."""
    rec = {"decodes_tried": 1, "decodes_exact": 0}
    try:
        mem = memory.start()
        start = time.perf_counter()
        data = baseline.encode(original, threads)
        rec["encode_seconds"] = time.perf_counter() - start
        rec["encode_memory"] = memory.peak(mem)
        rec["bytes"] = len(data)
    except Exception as err:  # noqa: BLE001
        rec["error"] = f"encode: {error_line(err)}"
        return rec
    try:
        mem = memory.start()
        start = time.perf_counter()
        back = baseline.decode(data, threads)
        rec["decode_seconds"] = time.perf_counter() - start
        rec["decode_memory"] = memory.peak(mem)
        if back == original:
            rec["decodes_exact"] = 1
        else:
            rec["error"] = f"decode: the decoded file differs from the input file ({len(back):,} of {len(original):,} bytes)"
    except Exception as err:  # noqa: BLE001
        rec["error"] = f"decode: {error_line(err)}"
    return rec

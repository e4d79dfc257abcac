"""report.json of `pixlm bench`: per-set totals, speed against the reference codec, the machine,
and the cost of ownership when asked (schema: docs/BENCH.md)."""

import os
import re
from datetime import datetime, timezone
from pathlib import Path

from trainer.bench.cost import break_even, cost_of

SCHEMA_VERSION = 1


def pair_key(rec: dict) -> tuple:
    return rec["set"], rec["image"], rec["codec"], rec.get("crop")


def _machine() -> dict:
    import platform
    import sys
    from importlib import metadata

    from trainer.bench.baselines import library_versions

    cpu, flags = platform.processor(), set()
    try:
        info = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
        cpu = match[1] if match else cpu
        match = re.search(r"^flags\s*:\s*(.+)$", info, re.M)
        flags = set(match[1].split()) if match else set()
    except OSError:
        pass
    # The kernel level torch dispatches to (AVX2, AVX512, ...): network bundles' streams are bit-exact
    # between machines that share it and the torch version. Where no bundle loaded torch (the online
    # bundles, the baselines; a torch-free install) it is not imported for this: the same level read
    # from the CPU's flags, and the installed torch version, if any.
    torch = sys.modules.get("torch")
    if torch is not None:
        capability, torch_version = torch.backends.cpu.get_cpu_capability(), torch.__version__
    else:  # torch's own test of the CPU (cpuinfo's flags), without importing torch
        capability = ("AVX512" if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
                      else "AVX2" if {"avx2", "fma"} <= flags else "DEFAULT" if flags else None)
        try:
            torch_version = metadata.version("torch")
        except metadata.PackageNotFoundError:
            torch_version = None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "cpu_capability": capability,
            "python": platform.python_version(), "torch": torch_version, "libraries": library_versions()}


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
    if ok and all("input_bytes" in r for r in ok):  # --files: against the input files themselves
        out["input_bytes"] = sum(r["input_bytes"] for r in ok)
        out["ratio"] = out["bytes"] / out["input_bytes"] if out["input_bytes"] else None
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


def build_report(config: dict, sets: list[dict], jobs: list, codecs: list[dict], records: list[dict],
                 memory_method: str, argv: list[str] | None = None) -> dict:
    from trainer.bench.baselines import FILE_REFERENCE, REFERENCE

    reference = FILE_REFERENCE if config.get("files") else REFERENCE  # speeds are ratios to its
    wanted = {(j.set, j.image, c["name"], config["crop"]) for j in jobs for c in codecs}
    latest = {}
    for rec in records:
        if pair_key(rec) in wanted:
            latest[pair_key(rec)] = rec  # the last line for a pair wins
    images = sorted(latest.values(), key=lambda r: ([s["name"] for s in sets].index(r["set"]), r["image"],
                                                    [c["name"] for c in codecs].index(r["codec"])))
    ref_by_image = {(r["set"], r["image"]): r for r in images if r["codec"] == reference and r.get("ok")}
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
        ref = entry["codecs"].get(reference)
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
                    if totals["cost"] and name != reference:
                        totals["cost"].update(break_even(totals["cost"], ref["cost"], totals, ref, prices))
        out_sets.append(entry)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": argv,
        "reference_codec": reference,
        "memory_method": memory_method,
        "machine": _machine(),
        "config": config,
        "codecs": codecs,
        "sets": out_sets,
        "images": images,
    }


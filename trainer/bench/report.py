"""report.md, pareto.png and heatmap_<set>.png from a `pixlm bench` report (built by trainer/bench/summary.py)."""

from pathlib import Path

import numpy as np


def _f(value, digits=3, suffix=""):
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}{suffix}"


def format_speed(value):
    if not value:
        return "–"
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g}"


def _ratio(value):
    return "–" if value is None else f"{value:.3g}x"


def _money(value):
    if value is None:
        return "–"
    return f"${value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"${value:.2e}"


def _reads(value):
    if value is None or isinstance(value, str):
        return value or "–"
    return f"{value:,.3g}"


def write_markdown(report: dict, out: Path) -> Path:
    cfg, ref = report["config"], report["reference_codec"]
    lines = ["# pixlm bench", "",
             f"Created {report['created']} on {report['machine']['cpu']} ({report['machine']['cpu_count']} CPUs), "
             f"torch {report['machine']['torch'] or 'not installed'}; {cfg['threads']} thread(s) per codec, {cfg['world_size']} process(es)"
             + (f", center crop {cfg['crop']}" if cfg["crop"] else "") + (f", first {cfg['limit']} images per set"
                                                                          if cfg["limit"] else "") + ".", "",
             "bpsp = 8 x file bytes / subpixels (every byte of each file; per set: total bits / total subpixels). "
             "Model bpsp: the ideal code length of the integer tables coded; overhead: bpsp / model bpsp - 1 (header, coder; "
             "negative where a stream is the smaller lossless-WebP fallback, marked per image). Speeds are subpixels per "
             f"second, totals over the set; 'vs {ref}': speed as a ratio to {ref}'s in this run (encode / decode). "
             f"Exact: bit-exact decodes / decodes tried (bundles include --decode-variants). "
             f"Memory: {report['memory_method']}; shown as peak (extra over the step's start), MB."
             + (" A baseline run as its own program (" + ", ".join(c["name"] for c in report["codecs"] if c.get("program"))
                + "): its child process's peak RSS is added to both, and its times include writing its input file "
                "and starting it." if any(c.get("program") for c in report["codecs"]) else ""), ""]
    files = bool(cfg.get("files"))
    if files:
        lines += ["Files (--files): each input file is coded as a file and must come back byte for byte "
                  "(exact: decoded files equal to the input / decodes tried); bundles encode the file itself "
                  "(a JPEG: its coefficients recoded, `pixlm encode photo.jpg`), baselines are lossless JPEG "
                  "recompressors. 'vs files': total bytes against the input files' total (negative: smaller).", ""]
        lines += [f"- {c['name']}: {c['description']}" for c in report["codecs"] if c.get("description")]
    lines += [f"- {c['name']}: {c['description']}" for c in report["codecs"] if c.get("program")]
    lines += [f"- skipped: {line}" for line in cfg.get("skipped") or []]
    if lines[-1] != "":
        lines.append("")
    for s in report["sets"]:
        sizes = "| bytes | vs files | bpsp" if files else "| bpsp | model bpsp | overhead"
        lines += [f"## {s['name']} ({s['images_done']}/{s['images']} images, {s['path']})", "",
                  f"| codec | ok {sizes} | encode s | decode s | encode sp/s | decode sp/s "
                  f"| vs {ref} (enc / dec) | exact | enc peak MB | dec peak MB |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, t in s["codecs"].items():
            mem = lambda k: (f"{t[f'{k}_peak_rss_mb']:.0f} (+{t[f'{k}_peak_rss_delta_mb']:.0f})"  # noqa: E731
                             if t[f"{k}_peak_rss_mb"] is not None else "–")
            if files:
                sized = (f"| {t['bytes']:,} | {_percent(t.get('ratio'))} | {_f(t['bpsp'], 4)} ")
            else:
                sized = (f"| {_f(t['bpsp'], 4)} | {_f(t.get('model_bpsp'), 4)} "
                         f"| {_f(100 * t['overhead'], 2, ' %') if t.get('overhead') is not None else '–'} ")
            lines.append(
                f"| {name} | {t['images_ok']}/{t['images_tried']} {sized}"
                f"| {_f(t['encode_seconds'], 2)} | {_f(t['decode_seconds'], 2)} | {format_speed(t['encode_subpixels_per_s'])} "
                f"| {format_speed(t['decode_subpixels_per_s'])} | {_ratio(t.get('encode_speed_vs_ref'))} / "
                f"{_ratio(t['decode_speed_vs_ref'])} "
                f"| {t['decodes_exact']}/{t['decodes_tried']} | {mem('encode')} | {mem('decode')} |")
        failures = [(name, f) for name, t in s["codecs"].items() for f in t["failures"]]
        if failures:
            lines += ["", "Failures:", ""] + [f"- {name} on {f['image']}: {f['error']}" for name, f in failures]
        if cfg["cost"]:
            p = cfg["cost"]
            lines += ["", f"Cost of ownership ({p['storage_usd_per_gb_month']} $/GB-month storage, "
                          f"{p['transfer_usd_per_gb']} $/GB transfer, {p['compute_usd_per_core_hour']} $/core-hour; "
                          f"break-even vs {ref}, see docs/BENCH.md):", "",
                      "| codec | cores | store 1 year | send once | encode compute | decode compute "
                      "| break-even reads | break-even months |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- |"]
            for name, t in s["codecs"].items():
                c = t.get("cost")
                if not c:
                    continue
                lines.append(f"| {name} | {c['cores_charged']} | {_money(c['storage_year_usd'])} "
                             f"| {_money(c['transfer_once_usd'])} | {_money(c['encode_compute_usd'])} "
                             f"| {_money(c['decode_compute_usd'])} "
                             f"| {'reference' if name == ref else _reads(c.get('break_even_reads'))} "
                             f"| {'reference' if name == ref else _reads(c.get('break_even_months'))} |")
        per = "bytes, against the input file; ✗ = failed" if files else "bpsp; ✗ = failed"
        lines += ["", f"Per image ({per}):", "",
                  "| image | " + ("input bytes | " if files else "") + " | ".join(s["codecs"]) + " |",
                  "| --- |" + " --- |" * (len(s["codecs"]) + files)]
        by_image = {}
        for r in report["images"]:
            if r["set"] == s["name"]:
                by_image.setdefault(r["image"], {})[r["codec"]] = r
        for image, recs in by_image.items():
            if files:
                cells = [("✗" if not recs[n].get("ok") else f"{recs[n]['bytes']:,} ({_percent(recs[n].get('ratio'))})"
                          + _coded_as(recs[n])) if n in recs else "–" for n in s["codecs"]]
                size = next((r["input_bytes"] for r in recs.values() if "input_bytes" in r), None)
                cells = [f"{size:,}" if size is not None else "–"] + cells
            else:
                cells = [("✗" if not recs[n].get("ok") else f"{recs[n]['bpsp']:.4f}"
                          + _coded_as(recs[n])) if n in recs else "–"
                         for n in s["codecs"]]
            lines.append(f"| {image} | " + " | ".join(cells) + " |")
        if (out / f"heatmap_{s['name']}.png").is_file():
            lines += ["", f"![bits per pixel]({'heatmap_' + s['name']}.png)"]
        lines.append("")
    if (out / "pareto.png").is_file():
        lines += ["![bpsp vs decode speed](pareto.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def write_plots(report: dict, out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    markers = "os^Dv<>p*h"  # one marker per set, one color per codec
    colors = {c["name"]: f"C{i % 10}" for i, c in enumerate(report["codecs"])}
    for i, s in enumerate(report["sets"]):
        for name, t in s["codecs"].items():
            if t["bpsp"] is None or not t["decode_subpixels_per_s"]:
                continue
            ax.scatter(t["decode_subpixels_per_s"], t["bpsp"], marker=markers[i % len(markers)], color=colors[name],
                       s=36, zorder=3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[c["name"]], marker="o", linestyle="", label=c["name"])
               for c in report["codecs"]]
    if len(report["sets"]) > 1:
        handles += [Line2D([], [], color="gray", marker=markers[i % len(markers)], linestyle="", label=f"set {s['name']}")
                    for i, s in enumerate(report["sets"])]
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xscale("log")
    ax.set_xlabel("decode speed (subpixels/s, log scale)")
    ax.set_ylabel("bits per subpixel (file bytes)")
    ax.set_title("lossless: rate vs decode speed (lower right is better)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "pareto.png", dpi=120)
    plt.close(fig)
    written.append(out / "pareto.png")
    maps = out / "maps"
    for s in report["sets"]:
        image_file = maps / f"{s['name']}__image.npy"
        bundles = [c["name"] for c in report["codecs"] if c["kind"] == "bundle"
                   and (maps / f"{s['name']}__{c['name']}.npy").is_file()]
        if not image_file.is_file() or not bundles:
            continue
        image = np.load(image_file)
        fig, axes = plt.subplots(1, 1 + len(bundles), figsize=(4 * (1 + len(bundles)), 3.6), squeeze=False)
        axes = axes[0]
        shown = image[:, :, 0] if image.shape[2] in (1, 2) else image[:, :, :3]
        axes[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None)
        axes[0].set_title("image")
        for ax, name in zip(axes[1:], bundles):
            bits = np.load(maps / f"{s['name']}__{name}.npy").mean(2)  # bits per subpixel at each pixel
            shown_map = ax.imshow(bits, cmap="magma", vmin=0)
            ax.set_title(f"{name}: {bits.mean():.3f} bits/subpixel")
            fig.colorbar(shown_map, ax=ax, fraction=0.046, pad=0.04)
        for ax in axes:
            ax.axis("off")
        fig.suptitle(f"{s['name']}: code length per pixel (mean over channels)")
        fig.tight_layout()
        fig.savefig(out / f"heatmap_{s['name']}.png", dpi=120)
        plt.close(fig)
        written.append(out / f"heatmap_{s['name']}.png")
    return written


def _percent(ratio) -> str:
    """A size against the input file's, as a change: 0.78 -> '-22.0 %'."""
    return "–" if ratio is None else f"{100 * (ratio - 1):+.1f} %"


def _coded_as(rec: dict) -> str:
    """How a bundle's stream holds the image, where it is not the model's own version 2 stream."""
    if rec.get("representation") in ("jpeg", "file"):  # --files: the JPEG recoded, or the file kept whole
        return f" ({rec['representation']}: {rec.get('coder') or '?'})"
    representation = rec.get("representation", "webp-lossless" if rec.get("fallback") else "model")
    names = {"model": "", "webp-lossless": " (WebP fallback)", "jpegxl-lossless": " (JPEG-XL fallback)",
             "jxl": " (JPEG-XL part)",
             "split16": " (model high bytes)", "planes": " (model, with metadata)"}
    return names.get(representation, f" ({representation})")

"""`pixlm poc DIR`: the proof of concept on a user's own images, one command.

1. Split the folder by whole image: every third image (sorted by name) adapts the codec, the
   rest test it; the two never share an image.
2. Adapt: a coordinate search over the online engine's settings (from the `max` preset) on the
   adaptation images, each candidate measured by the bytes it codes them in, for half the budget
   (CPU minutes); then the engine's network (trainer/engine/models/network.py) is trained on the
   same images for the rest (torch: `pixlm[train]`), and the settings with the network are
   exported as a bundle. The network counts only if it codes the adaptation images smaller.
3. Bench the adapted bundle beside the shipped online bundles and the classical codecs on the
   test images only (`pixlm bench --cost` at the user's prices), and say in one line whether the
   adapted codec pays for this data against JPEG-XL e9.
Writes OUT/report.md and OUT/report.html (the Pareto plot, the per-image table, the break-even).
"""

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from trainer.errors import PixlmError
from trainer.export import export_online
from trainer.images.files import center_crop

# Settings tried, each alone against the best so far; chosen among what validation moved.
SEARCH = {"lms_shift": (5, 7), "scale_mix": (0, 2), "intensity_bits": (2, 4), "energy_far": (8, 16),
          "scale_adapt_shift": (5, 7), "weight_sets": (1, 3), "scale_step": (1, 3)}
SAMPLE_SIDE = 256  # adaptation images are measured on their central crop of at most this side
NETWORK_SAMPLES = 2000  # training samples per image, channel slot and view (6 views)


def split(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    paths = sorted(paths)
    if len(paths) < 2:
        raise PixlmError(f"pixlm poc needs at least 2 images (one to adapt on, one to test); found {len(paths)}")
    return paths[::3], [p for i, p in enumerate(paths) if i % 3]


def adapt(images: list[np.ndarray], budget_seconds: float, progress: bool = True) -> tuple[dict, list[dict]]:
    """(the settings changed from the `max` preset, every trial), within the budget."""
    from dataclasses import replace

    from trainer.engine import coder
    from trainer.engine.settings import PRESETS
    from trainer.engine.tables import make_tables

    tables, start = make_tables(), time.perf_counter()
    samples = [center_crop(image, (SAMPLE_SIDE, SAMPLE_SIDE)) for image in images]

    def size(settings) -> int:
        return sum(len(coder.encode(sample, settings, tables, threads=1)[0]) for sample in samples)

    best = PRESETS["max"]
    best_size = size(best)
    trials = [{"settings": {}, "bytes": best_size}]
    steps = [(key, value) for key, values in SEARCH.items() for value in values]
    for key, value in tqdm(steps, desc="adapt", unit="trial", disable=not progress):
        if time.perf_counter() - start > budget_seconds:
            break
        candidate = replace(best, **{key: value})
        candidate_size = size(candidate)
        trials.append({"settings": {key: value}, "bytes": candidate_size})
        if candidate_size < best_size:
            best, best_size = candidate, candidate_size
    default = PRESETS["max"].to_dict()
    return {k: v for k, v in best.to_dict().items() if default[k] != v}, trials


def learn(images: list[np.ndarray], overrides: dict, seconds: float, trials: list[dict]):
    """(the network trained on the images within `seconds`, or None where it does not code them
    smaller than the settings alone; what was measured). Appends its trial to `trials`."""
    from dataclasses import replace

    from trainer.engine import coder
    from trainer.engine.models import network
    from trainer.engine.network_training import fit_report, samples, train
    from trainer.engine.settings import PRESETS
    from trainer.engine.tables import make_tables

    start = time.perf_counter()
    crops = [center_crop(image, (SAMPLE_SIDE, SAMPLE_SIDE)) for image in images]
    data = samples(crops, NETWORK_SAMPLES)
    layers, epochs = train(data, seconds=max(1.0, seconds / 2))
    net = network.quantize(layers)
    tables = {**make_tables(), **{f"net_{k}": v for k, v in net._asdict().items()}}
    settings = replace(PRESETS["max"], **overrides)
    sizes = [sum(len(coder.encode(crop, replace(settings, network=on), tables, threads=1)[0]) for crop in crops)
             for on in (0, 1)]
    trials.append({"settings": {"network": 1}, "bytes": sizes[1]})
    facts = {"samples_per_slot": len(data[0][1]), "epochs": epochs, "seconds": round(time.perf_counter() - start, 1),
             "fit": fit_report(net, data), "bytes_without": sizes[0], "bytes_with": sizes[1]}
    return (net if sizes[1] < sizes[0] else None), facts


def _link_all(paths: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True)
    for path in paths:
        target = folder / path.name
        try:
            os.symlink(path.resolve(), target)
        except OSError:
            shutil.copy2(path, target)


def run(args) -> int:
    import argparse

    from trainer.bench.cost import DEFAULT_PRICES
    from trainer.bench.options import add_parser
    from trainer.bench.run import command as bench
    from trainer.images.files import image_files, load_image
    from trainer.paths import resource

    source, out = Path(args.folder), Path(args.out)
    if not source.is_dir():
        raise PixlmError(f"{source}: not a folder of images")
    if out.exists() and any(out.iterdir()):
        raise PixlmError(f"{out} exists and is not empty (pixlm poc never replaces a report)")
    adapt_paths, test_paths = split(image_files(source))
    if importlib.util.find_spec("torch") is None:
        from trainer.codec.bundle import TRAIN_EXTRA

        raise PixlmError(f"pixlm poc trains the engine's network and needs torch: {TRAIN_EXTRA}")
    _link_all(adapt_paths, out / "adapt")
    _link_all(test_paths, out / "test")
    images = [load_image(p) for p in adapt_paths]
    start = time.perf_counter()
    overrides, trials = adapt(images, 30 * args.budget_minutes, not args.quiet)
    net, learned = learn(images, overrides, 60 * args.budget_minutes - (time.perf_counter() - start), trials)
    bundle = export_online(out / "pixlm-adapted", "max", overrides, net,
                           f"by `pixlm poc` on {len(adapt_paths)} images of {source.name}").path
    prices = {"storage_usd_per_gb_month": args.storage_price, "transfer_usd_per_gb": args.transfer_price,
              "compute_usd_per_core_hour": args.compute_price}
    (out / "prices.yaml").write_text("".join(f"{k}: {v}\n" for k, v in prices.items()))
    shipped = resource("checkpoints")
    argv = ["bench", "--data", str(out / "test"), "--bundle", str(bundle),
            "--bundle", str(shipped / "pixlm-online-max"), "--bundle", str(shipped / "pixlm-online-fast"),
            "--out", str(out / "bench"), "--threads", "1", "--cost", str(out / "prices.yaml")]
    if args.quiet:
        argv.append("--quiet")
    parser = argparse.ArgumentParser(prog="pixlm")
    add_parser(parser.add_subparsers(dest="command"))
    status = bench(parser.parse_args(argv), argv)
    if status:
        return status
    report = json.loads((out / "bench" / "report.json").read_text())
    codecs = report["sets"][0]["codecs"]
    mine, reference = codecs["pixlm-adapted"], codecs.get("jpegxl-e9", {})
    cost = mine.get("cost") or {}
    months = cost.get("break_even_months")
    if months is None:
        verdict = "no verdict: the bench measured no cost for the adapted codec"
    elif months == "never":
        verdict = (f"the adapted codec does not pay for this data: {mine['bpsp']:.4f} bpsp against JPEG-XL e9's "
                   f"{reference.get('bpsp', float('nan')):.4f}; its storage savings never repay its compute")
    else:
        verdict = (f"the adapted codec pays for this data after {months:,.0f} months of storage "
                   f"({mine['bpsp']:.4f} bpsp against JPEG-XL e9's {reference.get('bpsp', float('nan')):.4f})")
    lines = [f"# pixlm proof of concept: {source}", "", f"**{verdict}.**", "",
             f"Images: {len(adapt_paths)} to adapt on ({', '.join(p.name for p in adapt_paths)}), "
             f"{len(test_paths)} to test on; none in both. Budget {args.budget_minutes:g} CPU minutes; "
             f"prices {', '.join(f'{k} {v:g}' for k, v in prices.items())} (defaults: "
             f"{', '.join(f'{v:g}' for v in DEFAULT_PRICES.values())}).", "",
             f"Adapted bundle `{bundle}`: the `max` preset with {json.dumps(overrides) if overrides else 'no change'}"
             + (", and the engine's network trained on the adaptation images." if net is not None else
                "; the network trained on the adaptation images did not code them smaller, so it is left out."), "",
             f"Network: {learned['samples_per_slot']:,} samples per channel slot, {learned['epochs']} epochs in "
             f"{learned['seconds']} s; mean |error| (pixels) of (N + W) / 2 and of the network, per slot: "
             + "; ".join(f"{v['mae_ref']} -> {v['mae_network_int']}" for v in learned["fit"].values())
             + f". Adaptation images' central crops: {learned['bytes_without']:,} bytes without it, "
             f"{learned['bytes_with']:,} with it.",
             "", "| trial | bytes on the adaptation images |", "| --- | --- |",
             *[f"| {json.dumps(t['settings']) if t['settings'] else 'max preset'} | {t['bytes']:,} |" for t in trials],
             "", "## Bench on the test images", "", (out / "bench" / "report.md").read_text()]
    (out / "report.md").write_text("\n".join(lines))
    html = (out / "report.md").read_text().replace("&", "&amp;").replace("<", "&lt;")
    (out / "report.html").write_text(
        f"<!doctype html><meta charset=utf-8><title>pixlm proof of concept</title>"
        f"<h1>pixlm proof of concept</h1><p><b>{verdict}.</b></p>"
        f"<img src='bench/pareto.png' alt='bpsp against decode speed' style='max-width:100%'>"
        f"<pre style='white-space:pre-wrap'>{html}</pre>\n")
    print(f"{verdict}. Report: {out / 'report.md'} ({out / 'report.html'})")
    return 0

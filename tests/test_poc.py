"""`pixlm poc DIR`: adapt on some images, bench on the others (never the same), report and verdict."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def pixlm(*args):
    return subprocess.run([sys.executable, "-m", "trainer.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})


def test_poc_adapts_on_some_images_and_reports_on_the_others(photos, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(6):
        array = np.asarray(Image.open(photos[i % len(photos)]).convert("RGB"))[20 * i:20 * i + 96, 10:138]
        Image.fromarray(np.ascontiguousarray(array)).save(folder / f"img{i}.png")
    out = tmp_path / "poc"
    run = pixlm("poc", folder, "--out", out, "--budget-minutes", "0.05", "--storage-price", "0.03", "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    verdict = run.stdout.strip().splitlines()[-1]
    assert verdict.startswith("the adapted codec ") and "Report:" in verdict
    report = json.loads((out / "bench" / "report.json").read_text())
    tested = {Path(r["image"]).name for r in map(json.loads, (out / "bench" / "results.jsonl").read_text().splitlines())}
    adapted = {p.name for p in (out / "adapt").iterdir()}
    assert adapted == {"img0.png", "img3.png"} and tested == {"img1.png", "img2.png", "img4.png", "img5.png"}
    codecs = report["sets"][0]["codecs"]
    assert {"pixlm-adapted", "pixlm-online-max", "pixlm-online-fast", "jpegxl-e9"} <= set(codecs)
    assert codecs["pixlm-adapted"]["decodes_exact"] == 4 and codecs["pixlm-adapted"]["cost"]
    text = (out / "report.md").read_text()
    assert verdict.split(". Report")[0] in text and "storage_usd_per_gb_month 0.03" in text
    assert "<img src='bench/pareto.png'" in (out / "report.html").read_text() and (out / "bench" / "pareto.png").is_file()
    # the network was trained on the adaptation images and measured there; the bundle runs it
    # only where it coded them smaller, and says so
    assert "Network: " in text and "epochs in" in text
    bundle = out / "pixlm-adapted"
    engine = json.loads((bundle / "codec.json").read_text())["engine"]
    from safetensors.numpy import load_file

    stored = load_file(str(bundle / "tables.safetensors"))
    assert engine["network"] == ("net_w1" in stored)
    assert ("and the engine's network trained" in text) == bool(engine["network"])


def test_a_bundle_with_a_trained_network_round_trips_and_a_damaged_one_is_refused(tmp_path):
    """The network a poc trains reaches the codec: exported with the bundle's tables, loaded,
    run by the engine (exactly, on decode too); a bundle whose network is damaged or missing is
    refused in one line."""
    from safetensors.numpy import load_file, save_file

    from trainer.codec.bundle import write_manifest
    from trainer.codec.registry import open_codec
    from trainer.engine.models import network
    from trainer.engine.network_training import samples, train
    from trainer.errors import PixlmError
    from trainer.export import export_online

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64]
    image = np.clip(np.stack([100 + x + 20 * np.sin(y / 5), 80 + y + x / 2, 120 - x / 3 + y], -1)
                    + rng.normal(0, 3, (48, 64, 3)), 0, 255).astype(np.uint8)
    layers, epochs = train(samples([image], 500), hidden=8, epochs=2)
    net = network.quantize(layers)
    bundle = export_online(tmp_path / "b", "fast", None, net, "in a test").path
    assert json.loads((bundle / "codec.json").read_text())["engine"]["network"] == 1 and epochs == 2
    assert "trained network" in (bundle / "README.md").read_text()
    Image.fromarray(image).save(tmp_path / "a.png")
    codec = open_codec(bundle, progress=False, fallback=False)
    codec.encode(tmp_path / "a.png", tmp_path / "a.pxl")
    codec.decode(tmp_path / "a.pxl", tmp_path / "back.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back.png")), image)
    tables = load_file(str(bundle / "tables.safetensors"))
    save_file({**tables, "net_w2": tables["net_w2"][:, :3].copy()}, str(bundle / "tables.safetensors"))
    write_manifest(bundle)  # a consistent bundle, only its network damaged
    try:
        open_codec(bundle, progress=False, fallback=False)
        raise AssertionError("a damaged network was accepted")
    except PixlmError as err:
        assert "network of the wrong shapes" in str(err) and "\n" not in str(err)
    save_file({k: v for k, v in tables.items() if not k.startswith("net_")}, str(bundle / "tables.safetensors"))
    write_manifest(bundle)
    try:
        open_codec(bundle, progress=False, fallback=False)
        raise AssertionError("network=1 without a network was accepted")
    except PixlmError as err:
        assert "hold no network" in str(err)


def test_poc_refuses_in_one_line_and_replaces_nothing(photos, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    Image.open(photos[0]).convert("RGB").crop((0, 0, 32, 32)).save(one / "a.png")
    run = pixlm("poc", one, "--out", tmp_path / "r")
    assert run.returncode == 2 and "at least 2 images" in run.stderr and run.stderr.count("\n") == 1
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.md").write_text("mine")
    run = pixlm("poc", one, "--out", taken)
    assert run.returncode == 2 and "not empty" in run.stderr and (taken / "keep.md").read_text() == "mine"

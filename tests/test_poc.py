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

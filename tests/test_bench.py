"""pixlm bench end to end: the tiny trained bundle and every classical baseline on real photo crops."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.bench import measure
from trainer.bench import run as bench
from trainer.bench.baselines import BASELINES, REFERENCE
from trainer.bench.cost import DEFAULT_PRICES, load_prices
from trainer.bench.options import BenchError, parse_variants
from trainer.bench.summary import SCHEMA_VERSION
from trainer.cli import main as pixlm
from trainer.codec import fallback
from trainer.codec.container import unpack

REPO = Path(__file__).resolve().parent.parent
CROP = "24x16"  # 3 x 2 patches of 8x8: a bundle decode takes about a second on one thread


@pytest.fixture(scope="module")
def two_photos(tmp_path_factory, photos) -> Path:
    folder = tmp_path_factory.mktemp("two")
    for path in photos[:2]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def broken_bundles(tmp_path_factory, bundle_dir) -> tuple[Path, Path]:
    """A valid copy to be tampered with between encode and decode, and a bundle with a changed file."""
    root = tmp_path_factory.mktemp("bundles")
    tampered = shutil.copytree(bundle_dir, root / "tampered")
    corrupt = shutil.copytree(bundle_dir, root / "corrupt")
    weights = corrupt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    return tampered, corrupt


def flip_tampered(stream: Path) -> None:
    """Test hook: corrupt the payload of streams made with the 'tampered' bundle."""
    if "tampered" in stream.parts:
        data = bytearray(stream.read_bytes())
        data[len(data) - 6] ^= 0x5A
        stream.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def decode_clock() -> list[tuple[Path, float]]:
    """(stream, seconds) of every bundle decode of the `run` bench that returned, in order."""
    return []


@pytest.fixture(scope="module")
def run(tmp_path_factory, two_photos, bundle_dir, broken_bundles, decode_clock):
    out = tmp_path_factory.mktemp("report")

    def load_codec(*args):
        """The bench's codec, whose decode reports come from a fake clock: the n-th decode took n
        seconds. Bundle decode timings in the report are then exact numbers, not the machine's."""
        codec = measure.load_codec(*args)
        decode = codec.decode

        def fake_timed_decode(in_path, out_path=None):
            decoded, back = decode(in_path, out_path)
            decode_clock.append((Path(in_path), float(len(decode_clock) + 1)))
            return decoded, replace(back, seconds=decode_clock[-1][1])

        codec.decode = fake_timed_decode
        return codec

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench, "load_codec", load_codec)
        report = bench.run([two_photos], [bundle_dir, *broken_bundles], ",".join(BASELINES), out, crop=CROP,
                           threads=1, decode_variants="batch=3", cost="default", progress=False,
                           hooks={"after_encode": flip_tampered})
    return report, out


def by_codec(report, name):
    return [r for r in report["images"] if r["codec"] == name]


def test_schema_and_outputs(run, two_photos):
    report, out = run
    assert json.loads((out / "report.json").read_text()) == report
    assert report["schema_version"] == SCHEMA_VERSION
    for key in ("created", "reference_codec", "memory_method", "machine", "config", "codecs", "sets", "images"):
        assert key in report
    names = [c["name"] for c in report["codecs"]]
    assert names == ["tiny", "tampered", "corrupt", *BASELINES]
    (s,) = report["sets"]
    assert s["name"] == two_photos.name and s["images"] == s["images_done"] == 2
    assert len(report["images"]) == 2 * len(names)
    assert len((out / "results.jsonl").read_text().splitlines()) == 2 * len(names)
    for rec in report["images"]:
        assert (rec["width"], rec["height"], rec["channels"]) == (24, 16, 3) and rec["subpixels"] == 24 * 16 * 3
    for name in ("report.md", "pareto.png", f"heatmap_{s['name']}.png"):
        assert (out / name).stat().st_size > 0
    md = (out / "report.md").read_text()
    assert "| tiny | 2/2 |" in md and "Cost of ownership" in md and "bundle did not load" in md


def test_bpsp_is_file_bits_over_subpixels_and_every_baseline_round_trips(run, decode_clock):
    report, out = run
    for rec in report["images"]:
        if "bytes" in rec:
            assert rec["bpsp"] == pytest.approx(8 * rec["bytes"] / rec["subpixels"], rel=1e-12)
    for name in BASELINES:
        for rec in by_codec(report, name):
            assert rec["ok"] and rec["decodes_exact"] == rec["decodes_tried"] == 1, rec
    for rec in by_codec(report, "tiny"):
        stream = out / "streams" / rec["set"] / "tiny" / Path(rec["image"]).with_suffix(".pxl")
        assert rec["bytes"] == stream.stat().st_size
        assert rec["ok"] and rec["decodes_tried"] == rec["decodes_exact"] == 2  # main decode + batch=3 variant
        (variant,) = rec["variants"]
        assert {k: variant[k] for k in ("threads", "batch", "exact")} == {"threads": 1, "batch": 3, "exact": True}
        # each decode's own time (the fake clock's): the main decode's, then the variant's
        assert [rec["decode_seconds"], variant["seconds"]] == [t for path, t in decode_clock if path == stream]
        assert 0 < rec["decode_seconds"] < variant["seconds"]  # the variant's decode came second
        assert rec["overhead"] == pytest.approx(rec["bpsp"] / rec["model_bpsp"] - 1)
        for key in ("encode", "decode"):
            assert rec[f"{key}_subpixels_per_s"] == pytest.approx(rec["subpixels"] / rec[f"{key}_seconds"])
            assert rec[f"{key}_memory"]["peak_rss_mb"] > 0


def test_set_totals_are_total_bits_over_total_subpixels(run):
    report, _ = run
    (s,) = report["sets"]
    for name, totals in s["codecs"].items():
        ok = [r for r in by_codec(report, name) if r["ok"]]
        if not ok:
            assert totals["bpsp"] is None and totals["images_ok"] == 0
            continue
        subpixels = sum(r["subpixels"] for r in ok)
        assert totals["bits"] == 8 * sum(r["bytes"] for r in ok)
        assert totals["bpsp"] == pytest.approx(totals["bits"] / subpixels)
        decode = sum(r["decode_seconds"] for r in ok)
        assert totals["decode_subpixels_per_s"] == pytest.approx(subpixels / decode)
        ref = s["codecs"][REFERENCE]
        for key in ("encode", "decode"):
            assert totals[f"{key}_speed_vs_ref"] == pytest.approx(totals[f"{key}_subpixels_per_s"]
                                                                  / ref[f"{key}_subpixels_per_s"])
    tiny = s["codecs"]["tiny"]
    ok = by_codec(report, "tiny")
    assert tiny["model_bpsp"] == pytest.approx(sum(r["model_bpsp"] * r["subpixels"] for r in ok)
                                               / sum(r["subpixels"] for r in ok))
    # Speed ratios, recomputed here from the per-image records of the codec the report names as the
    # reference: per image (against that image's reference record) and per set.
    assert report["reference_codec"] == REFERENCE
    refs = {r["image"]: r for r in by_codec(report, report["reference_codec"]) if r["ok"]}
    assert len(refs) == 2

    def speed(records, key):
        return sum(r["subpixels"] for r in records) / sum(r[f"{key}_seconds"] for r in records)

    for name, totals in s["codecs"].items():
        ok = [r for r in by_codec(report, name) if r["ok"]]
        for key in ("encode", "decode"):
            for r in ok:
                assert r[f"{key}_speed_vs_ref"] == pytest.approx(speed([r], key) / speed([refs[r["image"]]], key))
            if ok:
                assert totals[f"{key}_speed_vs_ref"] == pytest.approx(speed(ok, key) / speed(refs.values(), key))
    # the tiny bundle's two main decodes took 1 s and 3 s by the fake clock (its variants 2 s and 4 s)
    assert tiny["decode_seconds"] == 1.0 + 3.0
    assert tiny["decode_speed_vs_ref"] == pytest.approx(tiny["subpixels"] / 4.0 / speed(refs.values(), "decode"))
    assert s["codecs"][REFERENCE]["decode_speed_vs_ref"] == pytest.approx(1.0)
    assert s["codecs"][REFERENCE]["encode_speed_vs_ref"] == pytest.approx(1.0)


def test_broken_bundles_are_failures_not_crashes(run):
    report, _ = run
    (s,) = report["sets"]
    for rec in by_codec(report, "tampered"):  # encoded fine, the stream was changed before decoding
        assert not rec["ok"] and rec["error"].startswith("decode:") and "bytes" in rec
        assert rec["decodes_exact"] < rec["decodes_tried"] == 2
    for rec in by_codec(report, "corrupt"):  # model.safetensors fails its manifest sha256
        assert not rec["ok"] and "bundle did not load" in rec["error"] and "sha256" in rec["error"]
    assert s["codecs"]["tampered"]["images_ok"] == 0 and len(s["codecs"]["tampered"]["failures"]) == 2
    assert s["codecs"]["corrupt"]["cost"] is None


def test_bits_map_accounts_for_the_payload(run, bundle_dir):
    report, out = run
    (s,) = report["sets"]
    first = by_codec(report, "tiny")[0]
    bits = np.load(out / "maps" / f"{s['name']}__tiny.npy")
    assert bits.shape == (16, 24, 3) and (bits > 0).all()
    stream = (out / "streams" / s["name"] / "tiny" / Path(first["image"]).with_suffix(".pxl")).read_bytes()
    header, payload = unpack(stream)
    assert first["fallback"] == (header.numeric_mode == fallback.MODE)
    if first["fallback"]:  # the tiny model loses to lossless WebP: the map still holds the model's code lengths
        assert 8 * len(payload) < bits.sum() and first["overhead"] < 0
    else:
        assert -32 <= 8 * len(payload) - bits.sum() <= 96  # ideal code length vs the range coder's whole 32-bit words


def test_cost_fields_follow_from_bytes_and_times(run):
    report, _ = run
    prices = report["config"]["cost"]
    assert prices == DEFAULT_PRICES
    (s,) = report["sets"]
    ref = s["codecs"][REFERENCE]
    cores = {c["name"]: c["cores_charged"] for c in report["codecs"]}
    assert cores["png"] == cores["jpegls"] == 1 and cores["tiny"] == cores[REFERENCE] == 1  # --threads 1
    for name, t in s["codecs"].items():
        c = t["cost"]
        if c is None:
            continue
        gb = t["bytes"] / 1e9
        assert c["storage_year_usd"] == pytest.approx(gb * prices["storage_usd_per_gb_month"] * 12)
        assert c["transfer_once_usd"] == pytest.approx(gb * prices["transfer_usd_per_gb"])
        for key in ("encode", "decode"):
            assert c[f"{key}_compute_usd"] == pytest.approx(
                t[f"{key}_seconds"] * cores[name] / 3600 * prices["compute_usd_per_core_hour"])
        if name == REFERENCE:
            assert "break_even_reads" not in c
            continue
        extra = c["encode_compute_usd"] - ref["cost"]["encode_compute_usd"]
        per_read = (ref["cost"]["transfer_once_usd"] - c["transfer_once_usd"]
                    - (c["decode_compute_usd"] - ref["cost"]["decode_compute_usd"]))
        assert c["extra_encode_usd"] == pytest.approx(extra) and c["saving_per_read_usd"] == pytest.approx(per_read)
        if extra <= 0 and per_read >= 0:
            assert c["break_even_reads"] == 0
        elif per_read <= 0:
            assert c["break_even_reads"] == "never"
        else:
            assert c["break_even_reads"] == pytest.approx(extra / per_read)
    # the tiny model's files are larger and its decode is slower than JPEG-XL's: it never pays off
    assert s["codecs"]["tiny"]["cost"]["break_even_reads"] == "never"


def test_resume_skips_done_pairs(tmp_path, two_photos):
    out = tmp_path / "r"
    bench.run([two_photos], [], "png,jpegls", out, crop=CROP, threads=1, progress=False)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4
    # an interrupted run: two complete lines and a torn one
    (out / "results.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    report = bench.run([two_photos], [], "png,jpegls,jpeg2000", out, crop=CROP, threads=1, resume=True,
                       progress=False)
    kept = (out / "results.jsonl").read_text().splitlines()
    assert kept[:2] == lines[:2]  # not re-run: the same measurement, byte for byte
    new = [json.loads(x) for x in kept[2:]]  # the torn line was dropped
    assert sorted((r["image"], r["codec"]) for r in new) == sorted(
        [(json.loads(lines[2])["image"], json.loads(lines[2])["codec"]), (json.loads(lines[3])["image"], json.loads(lines[3])["codec"])]
        + [(p.name, "jpeg2000") for p in sorted(two_photos.iterdir())])
    assert len(report["images"]) == 6 and all(r["ok"] for r in report["images"])
    # without --resume the old results go
    bench.run([two_photos], [], "png", out, crop=CROP, threads=1, progress=False, limit=1)
    assert len((out / "results.jsonl").read_text().splitlines()) == 1


def test_two_processes_write_one_merged_report(tmp_path, two_photos, bundle_dir):
    out = tmp_path / "dist"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "trainer.cli", "bench", "--data", str(two_photos), "--bundle", str(bundle_dir),
           "--baselines", "png,jpegxl-e9", "--crop", "16x8", "--threads", "1", "--out", str(out), "--quiet"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["world_size"] == 2
    assert sorted({r["rank"] for r in report["images"]}) == [0, 1]
    assert len(report["images"]) == 2 * 3 and all(r["ok"] for r in report["images"])
    assert report["sets"][0]["images_done"] == 2 and report["sets"][0]["codecs"]["tiny"]["images_ok"] == 2
    assert not list(out.glob("results.rank*.jsonl")) and len((out / "results.jsonl").read_text().splitlines()) == 6


@pytest.mark.parametrize("args,message", [
    (["--data", "EMPTY"], "holds no images"),
    (["--data", "MISSING"], "no such folder"),
    (["--data", "PHOTOS", "--baselines", "png,flif"], "unknown baseline 'flif'"),
    (["--data", "PHOTOS", "--crop", "24by16"], "--crop '24by16': expected WxH"),
    (["--data", "PHOTOS", "--crop", "0x16"], "expected WxH"),
    (["--data", "PHOTOS", "--decode-variants", "thread=2"], "keys are threads= and batch="),
    (["--data", "PHOTOS", "--limit", "0"], "--limit 0"),
    (["--data", "PHOTOS", "--cost", "NOPRICES.yaml"], "no such file"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, two_photos, capsys, args, message):
    (tmp_path / "empty").mkdir()
    subs = {"EMPTY": str(tmp_path / "empty"), "MISSING": str(tmp_path / "nope"), "PHOTOS": str(two_photos),
            "NOPRICES.yaml": str(tmp_path / "prices.yaml")}
    code = pixlm(["bench", *[subs.get(a, a) for a in args], "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("pixlm: error:") and message in err and "\n" not in err
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_price_file_overrides_defaults(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text("transfer_usd_per_gb: 0.01\n")
    assert load_prices(str(tmp_path / "p.yaml")) == {**DEFAULT_PRICES, "transfer_usd_per_gb": 0.01}
    (tmp_path / "q.yaml").write_text("egress: 1\n")
    with pytest.raises(BenchError, match="unknown price 'egress'"):
        load_prices(str(tmp_path / "q.yaml"))
    assert parse_variants("threads=1,2;batch=1,64") == [
        {"threads": 1, "batch": 1}, {"threads": 1, "batch": 64}, {"threads": 2, "batch": 1}, {"threads": 2, "batch": 64}]


def test_gray_and_alpha_images_round_trip_in_every_baseline_that_takes_them(photos):
    rgba = np.asarray(Image.open(photos[0]).convert("RGBA"))[:16, :24].copy()
    rgba[::3, ::2, 3] = 7  # some transparency, RGB kept under it
    for mode in ("L", "LA", "RGBA"):
        array = np.asarray(Image.fromarray(rgba, "RGBA").convert(mode)).reshape(16, 24, -1)
        for name, codec in BASELINES.items():
            if name == "jpegls" and mode == "LA":
                continue  # CharLS refuses 2 components: the bench records that as a failure
            assert np.array_equal(codec.decode(codec.encode(array), array), array), (name, mode)


def test_jpegls_runs_with_its_colour_transform_at_8_and_16_bits(photos):
    """jpegls-hp1 round-trips RGB and RGBA at 8 and 16 bits (values at both ends of the range, where
    the transform wraps), and on a photo it is smaller than CharLS on interleaved pixels."""
    codec, plain = BASELINES["jpegls-hp1"], BASELINES["jpegls"]
    photo = np.asarray(Image.open(photos[0]).convert("RGBA"))[:64, :96].copy()
    photo[:4, :, :3] = [255, 0, 255]
    for array in (photo[:, :, :3], photo, photo.astype(np.uint16) * 257 + 3):
        array = np.ascontiguousarray(array)
        assert np.array_equal(codec.decode(codec.encode(array), array), array)
    rgb = np.ascontiguousarray(np.asarray(Image.open(photos[0]).convert("RGB"))[:128, :128])
    assert len(codec.encode(rgb)) < len(plain.encode(rgb))


def test_readme_table_is_rewritten_between_the_markers(run, tmp_path):
    _, out = run
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- bench:start -->\nold table\n<!-- bench:end -->\nafter\n")
    script = [sys.executable, str(REPO / "benchmarks" / "make_readme_table.py"), "--report", str(out / "report.json"),
              "--readme", str(readme)]
    assert subprocess.run(script + ["--check"], capture_output=True).returncode == 1
    assert subprocess.run(script, capture_output=True).returncode == 0
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n<!-- bench:start -->\n") and text.endswith("<!-- bench:end -->\nafter\n")
    assert "old table" not in text and "| jpegxl-e9 |" in text and "| tampered | failed |" in text
    assert "| tiny | " in text and " 4/4 |" in text  # 2 images x (decode + 1 variant), all exact
    assert subprocess.run(script + ["--check"], capture_output=True).returncode == 0
    assert "bench:start" in (REPO / "README.md").read_text() and "bench:end" in (REPO / "README.md").read_text()
    # a codec's row from another run, marked with that run's date and kernel level
    report = json.loads((out / "report.json").read_text())
    assert subprocess.run(script + ["--also", f"{out / 'report.json'}:tiny"], capture_output=True).returncode == 0
    marked = f"| tiny (run of {report['created'][:10]}, {report['machine']['cpu_capability']}) |"
    assert marked in readme.read_text() and "| tiny | " in readme.read_text()

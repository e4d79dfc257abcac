"""paq8px in `pixlm bench`: a fake program that speaks its command line (zlib inside), the one-line skip
when there is no program, and one real round trip where build.sh has built paq8px on this machine."""

import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from odd_images import write_png  # noqa: E402

from trainer.bench import paq8px  # noqa: E402
from trainer.bench import run as bench  # noqa: E402
from trainer.bench.baselines import BaselineError, get_baselines  # noqa: E402
from trainer.cli import main as pixlm  # noqa: E402

CROP = "24x16"
REAL = Path.home() / ".cache" / "paq8px" / "b" / "paq8px"

FAKE = r'''#!{python}
"""Speaks paq8px's command line: -LEVEL IN OUT stores 'paq8px', level, 0, zlib(IN); -d IN OUT restores.
Like paq8px it exits 0 when it gives up (mode 'quit'). Mode: {mode}."""
import os, sys, zlib
args, mode = sys.argv[1:], "{mode}"
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log"), "a") as log:
    log.write(" ".join(args) + "\n")
if not args:
    print("paq8px v216 (c) 2026, Matt Mahoney et al.\nA command switch is required")
    sys.exit(0)
if mode == "quit":
    print("\nThere is a problem with the specified input file: " + args[-2])
    sys.exit(0)
if mode == "killed":
    os.kill(os.getpid(), 9)
if args[0] == "-d":
    data = open(args[1], "rb").read()
    raw = zlib.decompress(data[8:])
    if mode == "altered":  # one sample changed: a decode that is not exact
        raw = raw[:-1] + bytes([raw[-1] ^ 1])
    open(args[2], "wb").write(raw)
else:
    raw = open(args[1], "rb").read()
    open(args[2], "wb").write(b"paq8px" + bytes([int(args[0][1:]), 0]) + zlib.compress(raw, 9))
'''


def fake_binary(folder: Path, mode: str = "ok") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "paq8px"
    path.write_text(FAKE.replace("{python}", sys.executable).replace("{mode}", mode))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory, photos) -> Path:
    """RGB, gray and RGBA crops of a real photo (paq8px takes them: PPM, PGM, PAM), and gray+alpha and
    16-bit RGB (it has no image model for them: refused with a reason)."""
    folder = tmp_path_factory.mktemp("paq8px_images")
    rgba = np.asarray(Image.open(photos[0]).convert("RGBA"))[:16, :24].copy()
    rgba[::3, ::2, 3] = 7
    for mode in ("RGB", "L", "RGBA", "LA"):
        Image.fromarray(rgba, "RGBA").convert(mode).save(folder / f"a_{mode.lower()}.png")
    write_png(folder / "b_rgb16.png", rgba[:, :, :3].astype(np.uint16) * 257 + 1, colour=2, depth=16)
    return folder


def records(report, codec):
    return {r["image"]: r for r in report["images"] if r["codec"] == codec}


def test_names_and_levels(tmp_path):
    assert [paq8px.level_of(n) for n in ("paq8px", "paq8px-4", "paq8px-12", "paq8px-0", "paq8px-13", "paq8pxx",
                                         "png")] == [8, 4, 12, None, None, None, None]
    fake = fake_binary(tmp_path / "bin")
    (eight, four) = get_baselines("png,paq8px,paq8px-4", paq8px=str(fake))[1:]
    assert (eight.name, eight.level, four.name, four.level) == ("paq8px", 8, "paq8px-4", 4)
    assert eight.version == "v216" and not eight.threaded and str(fake.resolve()) in eight.description
    array = np.arange(16 * 24 * 3, dtype=np.uint8).reshape(16, 24, 3)
    data = four.encode(array)
    # the fake stored exactly what paq8px was given: level 4, a PPM with the header its detector parses
    assert data[:8] == b"paq8px\x04\x00"
    assert zlib.decompress(data[8:]) == b"P6\n24 16\n255\n" + array.tobytes()
    assert (fake.parent / "calls.log").read_text().splitlines()[-1] == "-4 image.pnm image.paq"
    assert np.array_equal(four.decode(data, array), array)
    assert (fake.parent / "calls.log").read_text().splitlines()[-1] == "-d image.paq back.pnm"
    assert four.child_peak_mb > 0  # the program's own peak memory (a child process)
    with pytest.raises(BaselineError, match=r"unknown baseline 'paq8px-13'.*paq8px-N: level N, 1\.\.12"):
        get_baselines("paq8px-13", paq8px=str(fake))


def test_pnm_files_round_trip_and_odd_ones_are_refused():
    rng = np.random.default_rng(0)
    for channels, magic in ((1, b"P5\n5 3\n255\n"), (3, b"P6\n5 3\n255\n"),
                            (4, b"P7\nWIDTH 5\nHEIGHT 3\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n")):
        array = rng.integers(0, 256, (3, 5, channels), dtype=np.uint8)
        data = paq8px.to_pnm(array)
        assert data.startswith(magic) and len(data) == len(magic) + array.size
        assert np.array_equal(paq8px.from_pnm(data), array)
        with pytest.raises(paq8px.Paq8pxError, match="sample bytes"):
            paq8px.from_pnm(data[:-1])
    with pytest.raises(paq8px.Paq8pxError, match="8-bit samples only"):
        paq8px.to_pnm(np.zeros((2, 2, 3), np.uint16))
    with pytest.raises(paq8px.Paq8pxError, match="gray\\+alpha"):
        paq8px.to_pnm(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(paq8px.Paq8pxError, match="not a binary PGM/PPM/PAM"):
        paq8px.from_pnm(b"BM\x00\x00")


def test_bench_runs_a_paq8px_program_and_checks_its_decode(tmp_path, images):
    fake = fake_binary(tmp_path / "bin")
    out = tmp_path / "report"
    report = bench.run([images], [], "png,paq8px", out, crop=CROP, threads=1, progress=False, paq8px=str(fake))
    assert report == json.loads((out / "report.json").read_text())
    (codec,) = [c for c in report["codecs"] if c["name"] == "paq8px"]
    assert codec["program"] == str(fake.resolve()) and codec["version"] == "v216" and codec["cores_charged"] == 1
    assert report["config"]["baselines"] == ["png", "paq8px"] and report["config"]["skipped"] == []
    got = records(report, "paq8px")
    for image in ("a_rgb.png", "a_l.png", "a_rgba.png"):
        rec, array = got[image], np.asarray(Image.open(images / image))
        array = array.reshape(16, 24, -1)
        assert rec["ok"] and rec["decodes_exact"] == rec["decodes_tried"] == 1, rec
        header = paq8px.to_pnm(array)  # the fake's archive: 8 bytes + zlib of the PNM paq8px was given
        assert rec["bytes"] == 8 + len(zlib.compress(header, 9))
        assert rec["bpsp"] == pytest.approx(8 * rec["bytes"] / array.size)
        assert rec["encode_memory"]["child_peak_rss_mb"] > 0 and rec["decode_memory"]["child_peak_rss_mb"] > 0
    assert not got["a_la.png"]["ok"] and "gray+alpha" in got["a_la.png"]["error"]
    assert not got["b_rgb16.png"]["ok"] and "8-bit samples only" in got["b_rgb16.png"]["error"]
    assert got["b_rgb16.png"]["error"].startswith("encode: Paq8pxError:")
    assert all(r["ok"] for r in records(report, "png").values())  # the other baselines run as before
    totals = report["sets"][0]["codecs"]["paq8px"]
    assert (totals["images_ok"], totals["images_tried"]) == (3, 5)
    md = (out / "report.md").read_text()
    assert "| paq8px | 3/5 |" in md and "- paq8px: paq8px v216 -8" in md and "child process's peak RSS" in md
    assert "- paq8px on b_rgb16.png: encode: Paq8pxError: paq8px's image models take 8-bit samples only" in md


@pytest.mark.parametrize("mode,error", [
    ("altered", "decode: decoded pixels differ from the original"),
    ("quit", "encode: Paq8pxError: paq8px -8 wrote no archive: There is a problem with the specified input file"),
    ("killed", "encode: Paq8pxError: paq8px -8 exited with -9 (killed: out of memory?)"),
])
def test_a_failing_program_is_a_failed_pair(tmp_path, images, mode, error):
    fake = fake_binary(tmp_path / "bin", mode)
    report = bench.run([images], [], "png,paq8px", tmp_path / "report", crop=CROP, threads=1, limit=1,
                       progress=False, paq8px=str(fake))
    rec = records(report, "paq8px")["a_l.png"]
    assert not rec["ok"] and rec["decodes_exact"] == 0 and rec["error"].startswith(error), rec
    assert ("bytes" in rec) == (mode == "altered")
    assert records(report, "png")["a_l.png"]["ok"]


def test_no_program_is_one_line_and_the_others_run(tmp_path, images, capsys, monkeypatch):
    monkeypatch.delenv(paq8px.ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "report"
    code = pixlm(["bench", "--data", str(images), "--baselines", "png,paq8px,paq8px-4", "--crop", CROP,
                  "--threads", "1", "--limit", "2", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    line = ("paq8px: no binary (give --paq8px PATH or set PIXLM_PAQ8PX; ../shared/tools/paq8px/build.sh builds one); "
            "skipped")
    assert code == 0 and err.splitlines().count(line) == 1 and err.count("paq8px") == 3  # one line, said once
    report = json.loads((out / "report.json").read_text())
    assert [c["name"] for c in report["codecs"]] == ["png"] and report["config"]["skipped"] == [line]
    assert len(report["images"]) == 2 and all(r["ok"] for r in report["images"])
    assert f"- skipped: {line}" in (out / "report.md").read_text()
    # the variable is the second place looked at, PATH the third
    fake = fake_binary(tmp_path / "bin")
    monkeypatch.setenv(paq8px.ENV, str(fake))
    assert paq8px.find_binary() == (fake.resolve(), paq8px.ENV)
    monkeypatch.delenv(paq8px.ENV)
    monkeypatch.setenv("PATH", str(fake.parent))
    assert paq8px.find_binary() == (fake.resolve(), "PATH")
    assert paq8px.find_binary(str(fake)) == (fake.resolve(), "--paq8px")


def test_a_named_path_that_is_no_program_is_an_error(tmp_path, images, capsys, monkeypatch):
    code = pixlm(["bench", "--data", str(images), "--baselines", "png,paq8px", "--paq8px", str(tmp_path / "nope"),
                  "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"pixlm: error: --paq8px {tmp_path / 'nope'}: not an executable file")
    assert "\n" not in err and not (tmp_path / "out" / "results.jsonl").exists()
    monkeypatch.setenv(paq8px.ENV, str(tmp_path))  # a folder
    with pytest.raises(BaselineError, match=f"{paq8px.ENV} {tmp_path}: not an executable file"):
        get_baselines("paq8px")
    assert get_baselines("png") and True  # not looked at unless paq8px is asked for


@pytest.mark.skipif(not (REAL.is_file() and os.access(REAL, os.X_OK)),
                    reason=f"no paq8px at {REAL} (../shared/tools/paq8px/build.sh builds it)")
def test_real_paq8px_round_trip(tmp_path, photos):
    """paq8px itself at its default level 8 (about 2.4 GB, a few seconds) on a 32x32 crop of a photo."""
    array = np.ascontiguousarray(np.asarray(Image.open(photos[0]).convert("RGB"))[:32, :32])
    (codec,) = get_baselines("paq8px", paq8px=str(REAL))
    data = codec.encode(array)
    assert data[:6] == b"paq8px" and data[6] == 8 and len(data) < array.size
    assert codec.child_peak_mb > 1000  # level 8 takes its ~2.4 GB
    assert np.array_equal(codec.decode(data, array), array)

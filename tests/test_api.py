"""The Python API (trainer.api), the Pillow plugin (trainer.pillow) and `pixlm info`: the same
bytes and errors as the CLI, full depth, no model loaded for `info`; the README's example runs."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer import api
from trainer.errors import PixlmError

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = ROOT / "tests" / "expected"
FAST = "pixlm-online-fast"


def test_bytes_round_trip_arrays_pil_images_and_paths_at_full_depth(tmp_path):
    original = np.asarray(Image.open(EXPECTED / "astronaut-64x40.png"))
    for source in (original, Image.open(EXPECTED / "astronaut-64x40.png"), EXPECTED / "astronaut-64x40.png"):
        data = api.encode(source, bundle=FAST)
        assert np.array_equal(api.decode(data), original)  # the bundle found from the stream's id
    deep = (np.arange(30 * 20 * 3).reshape(30, 20, 3) * 97 % 65536).astype(np.uint16)
    back = api.decode(api.encode(deep, bundle=FAST))
    assert back.dtype == np.uint16 and np.array_equal(back, deep)


def test_files_and_refusals_are_the_clis(tmp_path):
    import imagecodecs

    report = api.encode_file(EXPECTED / "astronaut-64x40.png", tmp_path / "a.pxl", bundle=FAST)
    assert report.file_bytes == (tmp_path / "a.pxl").stat().st_size
    with pytest.raises(PixlmError, match="exists"):
        api.encode_file(EXPECTED / "astronaut-64x40.png", tmp_path / "a.pxl", bundle=FAST)
    api.decode_file(tmp_path / "a.pxl", tmp_path / "a.png")
    assert np.array_equal(imagecodecs.png_decode((tmp_path / "a.png").read_bytes()),
                          np.asarray(Image.open(EXPECTED / "astronaut-64x40.png")))
    data = bytearray((tmp_path / "a.pxl").read_bytes())
    data[-5] ^= 0x10
    with pytest.raises(PixlmError, match="payload") as err:
        api.decode(bytes(data))
    assert "\n" not in str(err.value)
    with pytest.raises(PixlmError, match="no bundle"):
        api.encode(np.zeros((4, 4, 3), np.uint8), bundle="pixlm-no-such-bundle")
    with pytest.raises(PixlmError, match="magic"):
        api.decode(b"not a stream at all")


def test_pillow_opens_and_saves_pxl(tmp_path):
    import trainer.pillow  # noqa: F401  (registers the format)

    original = Image.open(EXPECTED / "astronaut-64x40.png")
    original.save(tmp_path / "a.pxl", bundle=FAST)
    assert (tmp_path / "a.pxl").read_bytes()[:4] == b"PXLM"
    opened = Image.open(tmp_path / "a.pxl")
    assert (opened.format, opened.mode, opened.size) == ("PXL", "RGB", original.size)
    assert np.array_equal(np.asarray(opened), np.asarray(original))
    gray16 = Image.fromarray((np.arange(40 * 30).reshape(30, 40) * 53 % 65536).astype(np.uint16))
    gray16.save(tmp_path / "g.pxl", bundle=FAST)
    back = Image.open(tmp_path / "g.pxl")
    assert back.mode == "I;16" and np.array_equal(np.asarray(back), np.asarray(gray16))
    rgb16 = api.encode((np.arange(8 * 6 * 3).reshape(8, 6, 3) * 999).astype(np.uint16), bundle=FAST)
    (tmp_path / "c.pxl").write_bytes(rgb16)
    with pytest.raises(PixlmError, match="no PIL mode"):
        Image.open(tmp_path / "c.pxl")


def test_info_reads_headers_without_loading_a_model(tmp_path):
    data = api.encode(np.asarray(Image.open(EXPECTED / "astronaut-64x40.png")), bundle=FAST)
    (tmp_path / "a.pxl").write_bytes(data)
    (tmp_path / "junk.pxl").write_bytes(b"PXLM\x02garbage")
    code = ("import sys, json; from trainer.cli import main; status = main(sys.argv[1:]); "
            "print(json.dumps(['torch' in sys.modules, 'numba' in sys.modules]), file=sys.stderr); sys.exit(status)")
    run = subprocess.run([sys.executable, "-c", code, "info", str(tmp_path / "a.pxl"), "--json"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    facts = json.loads(run.stdout)
    assert json.loads(run.stderr.strip().splitlines()[-1]) == [False, False]  # no model, no kernels
    assert facts["bundle_name"] == FAST and (facts["width"], facts["height"], facts["mode"]) == (64, 40, "RGB")
    assert facts["file_bytes"] == len(data) and facts["bpsp"] == pytest.approx(8 * len(data) / (64 * 40 * 3))
    assert facts == {"file": str(tmp_path / "a.pxl"), **api.info(data)}
    # the engine's choices for the image (its payload's first byte): fast keeps the given order
    assert facts["engine_choices"] == {"parity_contexts": False, "least_squares": False, "jpeg_ycbcr": False,
                                       "lattice": False, "channel_order": "RGB"}
    golden = api.info(EXPECTED / "astronaut-64x40.online-max.pxl")["engine_choices"]
    assert golden == {"parity_contexts": False, "least_squares": True, "jpeg_ycbcr": False, "lattice": False,
                      "channel_order": "RBG"}
    assert api.info(EXPECTED / "astronaut-64x40.context-v5.pxl")["engine_choices"] is None
    run = subprocess.run([sys.executable, "-m", "trainer.cli", "info", str(tmp_path / "junk.pxl")],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and run.stderr.startswith("pixlm: error:") and run.stderr.count("\n") == 1
    retired = api.info(EXPECTED / "retired-context-v1.pxl")
    assert retired["bundle_name"] == "pixlm-context-v1" and "0.2.0" in retired["bundle_note"]


def test_the_readmes_python_example_runs(tmp_path):
    block = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    shutil.copy(EXPECTED / "astronaut-64x40.png", tmp_path / "photo.png")
    run = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]

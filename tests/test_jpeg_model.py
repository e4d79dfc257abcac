"""pixlm's own JPEG coder (issue 34, item 1): baseline scans split into their coefficients and joined
back byte for byte (trainer/codec/jpeg_scan.py), the coefficients coded by the engine's model
(trainer/engine/jpeg_model.py) and restored exactly, its golden parts (tests/expected/jpeg), its
kernels on every CPU level with bounds checks, and damaged parts refused in one line."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_engine import cpu_levels
from tests.test_jpeg import _jpeg
from trainer.codec import jpeg_coefficients, jpeg_scan

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "expected" / "jpeg"


@pytest.fixture(scope="module")
def files(photos) -> dict[str, bytes]:
    a = np.asarray(Image.open(photos[0]).convert("RGB"))[:200, :232]
    return {
        "420-q75": _jpeg(a, quality=75),
        "422-q90": _jpeg(a[:96, :120], quality=90, subsampling=1),
        "444-q95": _jpeg(a[:64, :72], quality=95, subsampling=0),
        "gray-odd": _jpeg(a[:37, :53], "L", quality=85),
        "restart": _jpeg(a[:128, :160], quality=90, restart_marker_blocks=3),
        "optimized-trailing": _jpeg(a[:64, :96], quality=80, optimize=True) + b"after EOI \xff\xd9",
        "cmyk": _jpeg(a[:32, :48], "CMYK", quality=90),
        "tiny": _jpeg(a[:1, :1], quality=90),
        "flat": _jpeg(np.full((48, 64, 3), 77, dtype=np.uint8), quality=50),
    }


def test_baseline_scans_split_into_coefficients_and_join_byte_for_byte(files):
    for name, data in files.items():
        scan = jpeg_scan.split(data)
        assert jpeg_scan.join(scan) == data, name
        again = jpeg_scan.layout(scan.head, scan.tail)  # the decoder's way: the head's layout, then the values
        again.values[:] = scan.values
        assert jpeg_scan.join(again) == data, name
        width, height = Image.open(io.BytesIO(data)).size
        assert (scan.width, scan.height) == (width, height)
        assert len(scan.coefficients) == len(Image.open(io.BytesIO(data)).getbands())
    # a coefficient changed changes the file, and libjpeg decodes the change
    scan = jpeg_scan.split(files["444-q95"])
    before = np.asarray(Image.open(io.BytesIO(jpeg_scan.join(scan))))
    scan.coefficients[0][2, 3, 0] += 5  # the DC of one luma block: 5 steps brighter
    after = np.asarray(Image.open(io.BytesIO(jpeg_scan.join(scan)))).astype(int)
    changed = np.argwhere((after != before).any(axis=2))
    assert changed.min(axis=0).tolist() == [16, 24] and changed.max(axis=0).tolist() == [23, 31]


def test_what_the_scan_module_does_not_restore_is_unsupported(files, photos):
    a = np.asarray(Image.open(photos[0]).convert("RGB"))[:64, :64]
    data = files["420-q75"]
    sof = data.index(b"\xff\xc0")
    for bad in (_jpeg(a, quality=90, progressive=True), data[:len(data) // 2], data[:600], b"not a jpeg",
                data[:2] + b"\xff\xc9" + data[4:], data[:sof + 5] + b"\xff\xd9"):
        with pytest.raises(jpeg_scan.Unsupported):
            jpeg_scan.split(bad)


def test_the_model_restores_every_coefficient_extremes_included(files):
    for name, data in files.items():
        part = jpeg_coefficients.compress(data)
        assert jpeg_coefficients.decompress(part, len(data)) == data, name
    # every coefficient at random, up to the largest a baseline 8-bit JPEG holds (AC 1023, DC 2047 with
    # differences its tables code): the long exponents and mantissas of the model
    scan = jpeg_scan.split(files["422-q90"])
    rng = np.random.default_rng(7)
    for c in scan.coefficients:
        c[...] = rng.integers(-1023, 1024, size=c.shape) * (rng.random(c.shape) < 0.3)
        c[..., 0] = rng.integers(-1000, 1001, size=c.shape[:2])
    data = jpeg_scan.join(scan)
    part = jpeg_coefficients.compress(data)
    assert jpeg_coefficients.decompress(part, len(data)) == data


@pytest.mark.parametrize("name", ["astronaut-64x40-q90", "astronaut-64x40-q90-restart"])
def test_golden_parts_decode_and_reencode_to_the_same_bytes(name):
    """The format is fixed: tests/expected/jpeg holds JPEG files and the parts made of them."""
    data, part = (GOLDEN / f"{name}.jpg").read_bytes(), (GOLDEN / f"{name}.part").read_bytes()
    assert jpeg_coefficients.decompress(part, len(data)) == data
    assert jpeg_coefficients.compress(data) == part


CHECK = """
import sys
from pathlib import Path
from trainer.codec import jpeg_coefficients
folder = Path(sys.argv[1])
for name in ("astronaut-64x40-q90", "astronaut-64x40-q90-restart"):
    data, part = (folder / f"{name}.jpg").read_bytes(), (folder / f"{name}.part").read_bytes()
    assert jpeg_coefficients.decompress(part, len(data)) == data, name
    assert jpeg_coefficients.compress(data) == part, name
print("ok")
"""


@pytest.mark.parametrize("level", [level for level in cpu_levels() if level != "host"])
def test_the_kernels_give_the_same_bytes_on_every_cpu_level_with_bounds_checked(level, tmp_path):
    """Compiled afresh for each CPU target below the host's (the host's own is the golden test
    above, in this process), with numba's bounds checks in: the golden parts decode and re-encode
    to the same bytes (integer arithmetic only), and no index leaves its array."""
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    if level != "host":
        env["NUMBA_CPU_NAME"] = level
    run = subprocess.run([sys.executable, "-c", CHECK, str(GOLDEN)], env=env, capture_output=True, text=True,
                         cwd=ROOT)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_damaged_parts_are_refused_in_one_line_or_give_another_file(files):
    data = files["restart"]
    part = jpeg_coefficients.compress(data)
    for bad in (part[:2], b"PJ\x01" + part[3:10], part[:20] + b"\x00" * 30 + part[50:]):
        with pytest.raises(jpeg_coefficients.DamagedPart) as err:
            jpeg_coefficients.decompress(bad, len(data))
        assert "\n" not in str(err.value)
    # the coefficients cut short: the range decoder reads zeros, so another file or a refusal (the
    # stream's CRC refuses another file, tests/test_jpeg.py), never a crash or a hang
    try:
        assert jpeg_coefficients.decompress(part[:len(part) // 2], len(data)) != data
    except jpeg_coefficients.DamagedPart as err:
        assert "\n" not in str(err)
    # a header that declares more blocks than a file of its size can hold allocates nothing
    with pytest.raises(jpeg_coefficients.DamagedPart, match="more blocks"):
        jpeg_coefficients.decompress(part, 100)

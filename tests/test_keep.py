"""Never a larger stream than the input without saying so (issue 34, item 2): where every coded
stream of a file is larger than the file, the stream keeps the file's own bytes (format version 5)
and `pixlm decode` writes back exactly that file under its own suffix."""

import io
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer import api
from trainer.codec import container, envelope, keep
from trainer.codec.container import FormatError

REPO = Path(__file__).resolve().parent.parent
FAST = REPO / "checkpoints" / "pixlm-online-fast"
HEADER = 160  # bytes a version 5 stream may add to the file it keeps (its header: ~120)


def _pixlm(*args, cwd=REPO):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "trainer.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def jpeg(photos, tmp_path_factory) -> Path:
    """A camera-style JPEG: a 192x256 crop of a real photo saved by Pillow at quality 90."""
    array = np.asarray(Image.open(photos[0]).convert("RGB"))
    y, x = array.shape[0] // 2 - 96, array.shape[1] // 2 - 128
    path = tmp_path_factory.mktemp("jpeg") / "photo.jpg"
    Image.fromarray(array[y:y + 192, x:x + 256]).save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def kept(jpeg, tmp_path_factory) -> tuple[Path, object]:
    """`pixlm encode photo.jpg` with the fast bundle: the stream and the command's result."""
    stream = tmp_path_factory.mktemp("kept") / "photo.pxl"
    return stream, _pixlm("encode", jpeg, stream, "--bundle", FAST, "--quiet")


def test_a_jpeg_comes_back_as_its_own_bytes_smaller(jpeg, kept, tmp_path):
    """Since the JPEG mode (tests/test_jpeg.py) a JPEG is recoded at the level of its coefficients
    (version 5, representation jpeg) instead of kept whole; the stream decodes as a kept file does."""
    stream, enc = kept
    assert enc.returncode == 0, enc.stderr
    data = stream.read_bytes()
    assert data[4] == envelope.FILE_VERSION and len(data) < jpeg.stat().st_size
    line = enc.stdout.strip()
    assert line.count("\n") == 0 and "JPEG recoded by" in line and "restored byte for byte" in line
    # decoded into a folder: the same name and suffix, the very same bytes
    (tmp_path / "back").mkdir()
    dec = _pixlm("decode", stream, tmp_path / "back", "--quiet")
    assert dec.returncode == 0, dec.stderr
    assert (tmp_path / "back" / "photo.jpg").read_bytes() == jpeg.read_bytes()
    assert "restored the JPEG file byte for byte" in dec.stdout
    # beside the stream by default, and by name with any JPEG suffix; another format's suffix is refused
    beside = tmp_path / "beside"
    beside.mkdir()
    (beside / "photo.pxl").write_bytes(data)
    assert _pixlm("decode", beside / "photo.pxl", "--quiet").returncode == 0
    assert (beside / "photo.jpg").read_bytes() == jpeg.read_bytes()
    assert _pixlm("decode", stream, tmp_path / "named.jpeg", "--quiet").returncode == 0
    assert (tmp_path / "named.jpeg").read_bytes() == jpeg.read_bytes()
    wrong = _pixlm("decode", stream, tmp_path / "x.png")
    assert wrong.returncode == 2 and "decodes to JPEG" in wrong.stderr and not (tmp_path / "x.png").exists()
    # the API and the Pillow plugin give the JPEG's pixels
    pixels = np.asarray(Image.open(jpeg))
    assert np.array_equal(api.decode(data), pixels)
    import trainer.pillow  # noqa: F401

    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)


def test_info_says_what_a_kept_file_is(jpeg, kept):
    stream, _ = kept
    facts = api.info(stream)
    assert (facts["format_version"], facts["representation"], facts["file_format"]) == (5, "jpeg", "jpeg")
    assert facts["kept_file"]["size"] == jpeg.stat().st_size and facts["kept_file"]["suffixes"][0] == ".jpg"
    assert (facts["width"], facts["height"], facts["channels"]) == (256, 192, 3)
    shown = _pixlm("info", stream)
    assert shown.returncode == 0 and "format version 5 (jpeg: the input JPEG file recoded by" in shown.stdout
    assert "a JPEG file written back as it was" in shown.stdout


@pytest.mark.parametrize("damage", ["payload", "header", "truncated", "appended"])
def test_a_damaged_kept_stream_is_refused_in_one_line_and_nothing_written(kept, tmp_path, damage):
    stream, _ = kept
    data = bytearray(stream.read_bytes())
    if damage == "payload":
        data[-100] ^= 0x10
    elif damage == "header":
        data[30] ^= 0x01
    elif damage == "truncated":
        data = data[:-7]
    else:
        data += b"\0"
    bad = tmp_path / "bad.pxl"
    bad.write_bytes(bytes(data))
    out = _pixlm("decode", bad, tmp_path / "bad.jpg")
    assert out.returncode == 2 and out.stdout == "" and not (tmp_path / "bad.jpg").exists()
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("pixlm: error:") and "Traceback" not in out.stderr


def _forged(part: bytes, coder: int, size: int, crc: int, suffix: str = ".jpg") -> bytes:
    entry = f'{{"format":"jpeg","size":{size},"suffix":"{suffix}"}}'.encode()
    return envelope.pack(envelope.Envelope(b"\0" * 16, envelope.FILE, coder, 4, 4, 3, 8, crc,
                                           [(b"FMT ", entry)], [part]))


def test_forged_kept_files_are_refused_before_they_take_memory_or_name_a_path():
    original = b"not really a jpeg" * 10
    good = _forged(zlib.compress(original), envelope.ZLIB, len(original), zlib.crc32(original))
    assert keep.file_bytes(envelope.unpack(good)) == original
    bomb = zlib.compress(b"\0" * 50_000_000)  # inflates to 50 MB: only size + 1 bytes are ever made
    with pytest.raises(FormatError, match="damaged payload"):
        keep.file_bytes(envelope.unpack(_forged(bomb, envelope.ZLIB, 10, 0)))
    with pytest.raises(FormatError, match="does not inflate"):
        keep.file_bytes(envelope.unpack(_forged(b"\x01\x02junk", envelope.LZMA, 10, 0)))
    with pytest.raises(FormatError, match="format entry"):
        keep.facts(envelope.unpack(_forged(original, envelope.STORED, len(original), 0, suffix="/../x")))
    # an older pixlm (it read versions 1-4: version 5 goes to the version 2 parser) refuses it naming the version
    with pytest.raises(FormatError, match="format version 5 is not supported"):
        container.unpack(good)


def test_noise_is_kept_stored_and_no_stream_is_larger_than_its_file_plus_the_header(tmp_path):
    """Random pixels cost every coder more than 8 bits: the BMP (raw samples) is kept as it is."""
    noise = np.random.default_rng(3).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.bmp")
    Image.fromarray(noise).save(tmp_path / "noise.png")
    for name in ("noise.bmp", "noise.png"):
        enc = _pixlm("encode", tmp_path / name, tmp_path / f"{name}.pxl", "--bundle", FAST, "--quiet")
        assert enc.returncode == 0, enc.stderr
        data = (tmp_path / f"{name}.pxl").read_bytes()
        assert len(data) <= (tmp_path / name).stat().st_size + HEADER, enc.stdout
        if data[4] == envelope.FILE_VERSION:
            assert "kept the file's own bytes" in enc.stdout
    assert api.info(tmp_path / "noise.bmp.pxl")["kept_file"]["coder"] == "stored"
    assert _pixlm("decode", tmp_path / "noise.bmp.pxl", tmp_path / "back.bmp", "--quiet").returncode == 0
    assert (tmp_path / "back.bmp").read_bytes() == (tmp_path / "noise.bmp").read_bytes()


def test_a_photo_png_keeps_the_model_stream_and_no_fallback_or_strip_never_keep_the_file(photos, jpeg, tmp_path):
    array = np.asarray(Image.open(photos[0]).convert("RGB"))[:48, :64]
    Image.fromarray(array).save(tmp_path / "crop.png")
    codec = api.load(FAST)
    data, report = codec.encode_bytes(tmp_path / "crop.png")
    assert data[4] == container.VERSION and report.representation == "model" and not report.notes
    codec_no_fallback = type(codec)(codec.bundle, progress=False, fallback=False)
    data, report = codec_no_fallback.encode_bytes(jpeg)
    assert data[4] == container.VERSION and report.notes == [
        f"{len(data) - jpeg.stat().st_size:,} bytes larger than the input file ({jpeg.stat().st_size:,} bytes)"]
    data, report = codec.encode_bytes(jpeg, strip=True)
    assert data[4] != envelope.FILE_VERSION and "larger than the input file" in report.summary("encode")
    # arrays and PIL images have no file to keep
    data, _ = codec.encode_bytes(Image.open(jpeg))
    assert data[4] != envelope.FILE_VERSION

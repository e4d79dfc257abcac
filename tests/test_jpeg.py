"""JPEG files in, the same JPEG files out, smaller (issue 34, item 1): a JPEG input is recoded at
the level of its coefficients (pixlm's own coefficient model, Lepton or JPEG-XL's JPEG transcoding,
the smallest that restores every byte; trainer/codec/jpeg.py) or kept whole (zlib with libjpeg's tables as its dictionary), and
`pixlm decode` writes back the very same file. A suite of JPEG files made here with Pillow."""

import hashlib
import io
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from trainer import api, cli
from trainer.codec import container, envelope, jpeg, keep
from trainer.codec.container import FormatError

REPO = Path(__file__).resolve().parent.parent
FAST = REPO / "checkpoints" / "pixlm-online-fast"
HEADER = 160  # bytes a version 5 stream may add to the file it holds (its header: ~120)


def _pixlm(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "trainer.cli", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True)


def _jpeg(array: np.ndarray, mode: str | None = None, **options) -> bytes:
    image = Image.fromarray(array)
    image = image.convert(mode) if mode else image
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _crop(array: np.ndarray, height: int, width: int) -> np.ndarray:
    y, x = (array.shape[0] - height) // 2, (array.shape[1] - width) // 2
    return np.ascontiguousarray(array[y:y + height, x:x + width])


@pytest.fixture(scope="module")
def suite(photos, tmp_path_factory) -> dict[str, bytes]:
    """name -> JPEG file: baseline photos (`photo-*`, 64x64 and up) at 4:2:0 / 4:2:2 / 4:4:4 and
    several qualities, gray, restart intervals, EXIF + ICC + XMP + a comment, optimized tables;
    progressive ones, odd sizes, trailing bytes after EOI, CMYK (only pixlm's model takes it), progressive
    CMYK (no coder takes it: kept whole)."""
    a = np.asarray(Image.open(photos[0]).convert("RGB"))
    b = np.asarray(Image.open(photos[1]).convert("RGB"))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132] = "pixlm", "test camera", "2026:01:02 03:04:05"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF/></x:xmpmeta>"
    return {
        "photo-420-q90": _jpeg(_crop(a, 192, 256), quality=90),
        "photo-422-q90": _jpeg(_crop(b, 128, 160), quality=90, subsampling=1),
        "photo-444-q95": _jpeg(_crop(a, 128, 128), quality=95, subsampling=0),
        "photo-420-q75-64": _jpeg(_crop(b, 64, 64), quality=75),
        "photo-444-q90-64": _jpeg(_crop(a, 64, 64), quality=90, subsampling=0),
        "photo-gray-q90": _jpeg(_crop(a, 96, 128), "L", quality=90),
        "photo-gray-q75-64": _jpeg(_crop(b, 64, 64), "L", quality=75),
        "photo-restart-blocks": _jpeg(_crop(b, 192, 256), quality=90, restart_marker_blocks=3),
        "photo-restart-rows": _jpeg(_crop(a, 192, 256), quality=85, restart_marker_rows=1),
        "photo-exif-icc-xmp": _jpeg(_crop(a, 192, 256), quality=90, exif=exif.tobytes(), icc_profile=icc, xmp=xmp,
                                    comment="pixlm keeps this comment"),
        "photo-optimized": _jpeg(_crop(b, 96, 128), quality=90, optimize=True),
        "progressive-420": _jpeg(_crop(a, 128, 192), quality=90, progressive=True),
        "progressive-444-optimized": _jpeg(_crop(b, 192, 256), quality=85, progressive=True, optimize=True,
                                           subsampling=0),
        "progressive-gray": _jpeg(_crop(a, 192, 192), "L", quality=80, progressive=True),
        "odd-33x17": _jpeg(_crop(a, 17, 33), quality=90),
        "odd-17x33-444": _jpeg(_crop(b, 33, 17), quality=95, subsampling=0),
        "odd-1x1": _jpeg(_crop(a, 1, 1), quality=90),
        "trailing-garbage": _jpeg(_crop(b, 192, 256), quality=90) + b"trailing bytes \x00\xff\xd9 after EOI",
        "cmyk": _jpeg(_crop(b, 64, 96), "CMYK", quality=90),
        "cmyk-progressive": _jpeg(_crop(a, 64, 96), "CMYK", quality=90, progressive=True),
    }


@pytest.fixture(scope="module")
def coded(suite, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The suite encoded as a folder (one `pixlm encode`, summary lines by file) and decoded back into
    another (one `pixlm decode`): (root, {name: summary line})."""
    root = tmp_path_factory.mktemp("suite")
    (root / "in").mkdir()
    for name, data in suite.items():
        (root / "in" / f"{name}.jpg").write_bytes(data)
    enc = _pixlm("encode", root / "in", root / "pxl", "--bundle", FAST)
    assert enc.returncode == 0, enc.stderr
    dec = _pixlm("decode", root / "pxl", root / "back", "--quiet")
    assert dec.returncode == 0, dec.stderr
    lines = {Path(line.split(":", 1)[0]).stem: line for line in enc.stdout.splitlines() if ".pxl:" in line}
    return root, lines


RECODED = ("photo-420-q90", "photo-444-q95", "photo-restart-blocks", "photo-restart-rows", "photo-exif-icc-xmp",
           "progressive-444-optimized", "progressive-gray", "trailing-garbage")


def test_every_valid_jpeg_comes_back_byte_for_byte(suite, coded):
    root, _ = coded
    for name, data in suite.items():
        assert (root / "back" / f"{name}.jpg").read_bytes() == data, name


def test_every_baseline_photo_is_smaller_and_no_stream_exceeds_its_file_plus_the_header(suite, coded):
    root, lines = coded
    for name, data in suite.items():
        stream = (root / "pxl" / f"{name}.pxl").read_bytes()
        assert stream[4] == envelope.FILE_VERSION, name
        assert len(stream) <= len(data) + HEADER, (name, len(stream), len(data))
        if name.startswith("photo-"):
            assert len(stream) < len(data), (name, len(stream), len(data), lines[name])
    # files of 10 kB and more are recoded (smaller than the file kept whole), and say by how much they
    # shrank; below that the file kept whole may be the smaller (zlib with libjpeg's tables). The
    # baseline ones by pixlm's own model (the smallest), the progressive ones by Lepton or JPEG-XL
    for name in RECODED:
        facts = api.info(root / "pxl" / f"{name}.pxl")
        coders = ("lepton", "jpegxl") if name.startswith("progressive") else ("pixlm",)
        assert facts["representation"] == "jpeg" and facts["kept_file"]["coder"] in coders, (name, facts)
        assert "restored byte for byte" in lines[name] and "% below the file" in lines[name], lines[name]
    assert len((root / "pxl" / "photo-420-q90.pxl").read_bytes()) < 0.92 * len(suite["photo-420-q90"])


def test_what_no_jpeg_coder_takes_is_kept_whole_and_said_so(suite, coded):
    root, lines = coded
    facts = api.info(root / "pxl" / "cmyk-progressive.pxl")
    assert (facts["representation"], facts["mode"], facts["kept_file"]["format"]) == ("file", "CMYK", "jpeg")
    line = lines["cmyk-progressive"]
    assert "kept the file's own bytes" in line and "no JPEG coder restores it" in line
    assert "lepton:" in line and "jpegxl:" in line and "pixlm: not a baseline" in line, line
    assert api.info(root / "pxl" / "cmyk.pxl")["kept_file"]["coder"] == "pixlm"  # a baseline CMYK file: pixlm's own
    # where the JPEG's headers are most of it, zlib with libjpeg's tables beats the recoders
    assert api.info(root / "pxl" / "odd-1x1.pxl")["kept_file"]["coder"] == "zlib+jpeg-tables"


def test_info_says_which_coder_holds_the_jpeg(coded):
    root, _ = coded
    shown = _pixlm("info", root / "pxl" / "photo-420-q90.pxl")
    assert shown.returncode == 0, shown.stderr
    assert "format version 5 (jpeg: the input JPEG file recoded by " in shown.stdout
    assert "restored byte for byte" in shown.stdout and "% below the file" in shown.stdout
    facts = api.info(root / "pxl" / "photo-420-q90.pxl")
    assert (facts["width"], facts["height"], facts["channels"], facts["depth"]) == (256, 192, 3, 8)
    assert facts["kept_file"]["suffixes"][0] == ".jpg"


CORRUPT = {
    "truncated-in-scan": lambda d: d[:len(d) // 2],
    "headers-only": lambda d: d[:d.index(b"\xff\xda") + 14],
    "garbage-after-soi": lambda d: d[:4] + bytes(range(256)) * 4,
    "no-eoi": lambda d: d[:-2],
}


@pytest.mark.parametrize("damage", sorted(CORRUPT))
def test_a_corrupt_jpeg_is_refused_in_one_line_and_nothing_written(suite, tmp_path, capsys, damage):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(CORRUPT[damage](suite["photo-420-q90"]))
    code = cli.main(["encode", str(bad), str(tmp_path / "bad.pxl"), "--bundle", str(FAST), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "bad.pxl").exists(), err
    assert err.count("\n") == 1 and err.startswith("pixlm: error:") and "not a readable JPEG" in err, err


def test_every_coder_restores_every_kind_of_jpeg_it_takes_byte_for_byte(suite):
    """Lepton and JPEG-XL's transcoding each give back every file of the suite (whichever the stream
    keeps), progressive, restart markers, metadata and trailing bytes included; CMYK neither. pixlm's
    own model takes every baseline file, CMYK too (progressive ones are left to the others)."""
    for name, data in suite.items():
        good, failed = jpeg.recoded(data)
        coders = {jpeg.CODERS[c] for c, _ in good}
        expected = {"lepton", "jpegxl"} | (set() if "progressive" in name else {"pixlm"})
        if name.startswith("cmyk"):  # Lepton and JPEG-XL take no CMYK
            expected -= {"lepton", "jpegxl"}
        assert coders == expected, (name, failed)
        assert sorted(len(p) for _, p in good) == [len(p) for _, p in good]  # smallest first


def test_each_coder_restores_its_jpeg_and_the_api_gives_its_pixels(suite):
    data = suite["photo-422-q90"]
    shape = jpeg.examine(data)
    pixels = np.asarray(Image.open(io.BytesIO(data)))
    for coder in (jpeg.LEPTON, jpeg.JPEGXL, jpeg.PIXLM):
        stream = jpeg.pack(b"\0" * 16, data, shape, coder, jpeg._encode(coder, data), ".jpg")
        assert keep.file_bytes(envelope.unpack(stream)) == data
        assert np.array_equal(api.decode(stream, FAST), pixels)
        assert api.info(stream)["kept_file"]["coder"] == jpeg.CODERS[coder]
    # an older pixlm (versions 1-4) refuses it naming the version
    with pytest.raises(FormatError, match="format version 5 is not supported"):
        container.unpack(stream)


def test_without_lepton_the_encoder_uses_jpegxl_and_a_lepton_stream_names_the_package(suite, tmp_path, monkeypatch):
    path = tmp_path / "photo.jpg"
    path.write_bytes(suite["progressive-420"])  # pixlm's own model takes no progressive file
    codec = api.load(FAST)
    lepton_stream, _ = codec.encode_bytes(path)
    monkeypatch.setattr(jpeg, "_lepton", lambda: None)
    data, report = codec.encode_bytes(path)
    assert report.representation == "jpeg" and api.info(data)["kept_file"]["coder"] == "jpegxl"
    assert keep.file_bytes(envelope.unpack(data)) == path.read_bytes()
    if api.info(lepton_stream)["kept_file"]["coder"] == "lepton":
        with pytest.raises(jpeg.JpegCoderError, match="pip install lepton-jpeg-python"):
            keep.file_bytes(envelope.unpack(lepton_stream))


def _forged(part: bytes, coder: int, size: int, crc: int) -> bytes:
    entry = json.dumps({"format": "jpeg", "size": size, "suffix": ".jpg"}, separators=(",", ":")).encode()
    return envelope.pack(envelope.Envelope(b"\0" * 16, envelope.JPEG, coder, 8, 8, 3, 8, crc, [(b"FMT ", entry)],
                                           [part]))


def test_damaged_or_forged_jpeg_streams_are_refused(suite, coded, tmp_path):
    data = suite["photo-444-q95"]
    with pytest.raises(FormatError, match="damaged payload: the JPEG does not decode"):
        keep.file_bytes(envelope.unpack(_forged(b"\xcf\x84junk" * 20, jpeg.LEPTON, len(data), 0)))
    other = suite["photo-422-q90"]  # a valid part of another file: its size and CRC are not this file's
    with pytest.raises(FormatError, match="fails its size or CRC check"):
        keep.file_bytes(envelope.unpack(_forged(jpeg._encode(jpeg.JPEGXL, other), jpeg.JPEGXL, len(data),
                                                 zlib.crc32(data))))
    with pytest.raises(FormatError, match="damaged payload: the JPEG does not decode"):
        keep.file_bytes(envelope.unpack(_forged(b"PJ\x01" + b"\xff" * 40, jpeg.PIXLM, len(data), 0)))
    with pytest.raises(FormatError, match="invalid header fields"):  # coder 3 is not a JPEG coder
        envelope.unpack(_forged(b"x", 3, 1, 0))
    root, _ = coded
    stream = bytearray((root / "pxl" / "photo-444-q95.pxl").read_bytes())
    stream[-50] ^= 0x04
    (tmp_path / "bad.pxl").write_bytes(bytes(stream))
    out = _pixlm("decode", tmp_path / "bad.pxl", tmp_path / "bad.jpg")
    assert out.returncode == 2 and not (tmp_path / "bad.jpg").exists()
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("pixlm: error:"), out.stderr


def test_the_jpeg_tables_dictionary_is_fixed_and_holds_libjpegs_headers():
    """The preset dictionary of kept JPEGs is part of the format: its bytes may never change."""
    dictionary = jpeg.header_dictionary()
    assert len(dictionary) == 14250
    assert hashlib.sha256(dictionary).hexdigest() == "d90072d3e2cd4ef97cb671c74124d9581ea610b1142abc6569f46d93c9ae7f31"
    for quality in (1, 50, 75, 90, 100):
        head = _jpeg(np.zeros((8, 8, 3), np.uint8), quality=quality)
        tables = head[20:head.index(b"\xff\xc0")]  # libjpeg's two DQT markers, as Pillow writes them
        assert len(tables) == 138 and tables in dictionary
        huffman = head[head.index(b"\xff\xc4"):head.index(b"\xff\xda")]
        assert huffman in dictionary
    original = _jpeg(np.zeros((16, 16, 3), np.uint8), quality=90)
    kept = keep.pack(b"\0" * 16, original, jpeg.examine(original), ".jpg")
    env = envelope.unpack(kept)
    assert env.low == envelope.ZLIB_JPEG and len(kept) < len(original) and keep.file_bytes(env) == original


def test_pixlm_bench_files_compares_the_jpeg_mode_with_lepton_and_jpegxl(suite, tmp_path):
    from trainer.bench import run as bench
    from trainer.bench.baselines import BaselineError
    from trainer.bench.options import BenchError

    folder = tmp_path / "jpegs"
    folder.mkdir()
    for name in ("photo-420-q90", "progressive-420", "odd-1x1"):
        (folder / f"{name}.jpg").write_bytes(suite[name])
    out = tmp_path / "report"
    report = bench.run([folder], [FAST], None, out, threads=1, progress=False, files=True,
                       decode_variants="threads=2")
    codecs = report["sets"][0]["codecs"]
    assert list(codecs) == ["pixlm-online-fast", "lepton", "jpegxl-jpeg"] and report["reference_codec"] == "lepton"
    assert codecs["pixlm-online-fast"]["decodes_exact"] == codecs["pixlm-online-fast"]["decodes_tried"] == 6
    for name, totals in codecs.items():
        assert totals["images_ok"] == 3 and totals["input_bytes"] == sum(map(len, (suite[n] for n in (
            "photo-420-q90", "progressive-420", "odd-1x1")))), name
    assert codecs["pixlm-online-fast"]["ratio"] < 1
    recs = {r["image"]: r for r in report["images"] if r["codec"] == "pixlm-online-fast"}
    assert recs["photo-420-q90.jpg"]["representation"] == "jpeg" and recs["photo-420-q90.jpg"]["coder"] == "pixlm"
    assert recs["progressive-420.jpg"]["coder"] in ("lepton", "jpegxl")
    assert recs["odd-1x1.jpg"]["coder"] == "zlib+jpeg-tables"
    text = (out / "report.md").read_text()
    assert "| bytes | vs files |" in text and "(jpeg: " in text and "| input bytes |" in text
    with pytest.raises(BaselineError, match="cannot code a file byte for byte"):
        bench.run([folder], [], "png", tmp_path / "x", files=True, progress=False)
    with pytest.raises(BaselineError, match="add --files"):
        bench.run([folder], [], "lepton", tmp_path / "x", progress=False)
    with pytest.raises(BenchError, match="--crop with --files"):
        bench.run([folder], [], None, tmp_path / "x", crop="16x16", files=True, progress=False)


def test_a_ray_run_verifies_a_jpeg_stream_by_its_bytes(suite, coded, tmp_path):
    """`--ray` skips an output that already verifies: a version 5 stream against its file, byte for
    byte (a CMYK JPEG too, whose pixels pixlm does not read); another file does not verify."""
    from trainer.codec.cluster import _exact

    root, _ = coded
    for name in ("photo-420-q90", "cmyk"):
        src, stream = root / "in" / f"{name}.jpg", root / "pxl" / f"{name}.pxl"
        assert _exact("encode", src, stream, str(FAST)) and _exact("decode", stream, src, str(FAST))
    assert not _exact("encode", root / "in" / "cmyk.jpg", root / "pxl" / "photo-420-q90.pxl", str(FAST))

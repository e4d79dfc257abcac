"""Every input round-trips at its full sample depth with its metadata, or is refused with one line.

Files are written by independent encoders and decoded files read by independent decoders
(tests/odd_images.py: pypng, tifffile, numpy), never through pixlm's own reader, so a reader that
reduces samples (as Pillow cuts 16-bit RGB to 8 bits) cannot hide a loss."""

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from odd_images import build_suite, png_chunks, reference_samples, write_png  # noqa: E402

from trainer.codec import envelope  # noqa: E402
from trainer.codec.bundle import default_bundle  # noqa: E402
from trainer.codec.container import FormatError  # noqa: E402
from trainer.codec.registry import open_codec  # noqa: E402
from trainer.codec.stream import CodecError  # noqa: E402
from trainer.images.picture import ImageModeError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def pixlm(*args):
    return subprocess.run([sys.executable, "-m", "trainer.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO)


@pytest.fixture(scope="module")
def codec():
    return open_codec(default_bundle(), progress=False)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("suite")
    return folder, build_suite(folder)


@pytest.fixture(scope="module")
def coded_suite(suite, tmp_path_factory):
    """The suite through the command line, as a user runs it: encode the folder, decode the streams."""
    folder, expect = suite
    root = tmp_path_factory.mktemp("coded")
    encoded = pixlm("encode", folder, root / "pxl", "--keep-going", "--quiet")
    decoded = pixlm("decode", root / "pxl", root / "back", "--quiet")
    return root, encoded, decoded


def test_the_suite_covers_every_colour_type_and_depth(suite):
    folder, expect = suite
    names = set(expect)
    for colour, depths in {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}.items():
        for depth in depths:
            assert f"c{colour}-d{depth:02d}.png" in names and f"c{colour}-d{depth:02d}-i.png" in names
    assert sum(v == "corrupt" for v in expect.values()) == 4 and any(n.endswith(".tif") for n in names)


def test_every_file_round_trips_at_full_depth_or_is_refused_with_one_line(suite, coded_suite):
    folder, expect = suite
    root, encoded, decoded = coded_suite
    assert encoded.returncode == 2 and decoded.returncode == 0, decoded.stderr
    refused = [line for line in encoded.stderr.splitlines() if line.startswith("pixlm: error:")]
    assert sorted(line.split(":")[2].strip().rsplit("/", 1)[-1] for line in refused) == sorted(
        n for n, v in expect.items() if v == "corrupt")
    assert len(encoded.stderr.strip().splitlines()) == len(refused) + 1  # one line each, and the count
    for name, verdict in expect.items():
        stream = root / "pxl" / Path(name).with_suffix(".pxl")
        if verdict == "corrupt":
            assert not stream.exists()
            continue
        back = next((root / "back").glob(Path(name).stem + ".*"))
        assert back.suffix == {".png": ".png", ".tif": ".tif", ".pgm": ".pgm", ".ppm": ".ppm"}[Path(name).suffix]
        original, restored = reference_samples(folder / name), reference_samples(back)
        assert restored.dtype == original.dtype and np.array_equal(restored, original), name
        if name.endswith(".png"):  # tRNS, iCCP, eXIf, tEXt, PLTE: byte for byte, in order
            assert png_chunks(back) == png_chunks(folder / name), name


def test_a_16bit_file_with_random_low_bytes_keeps_them(codec, tmp_path):
    """Pillow reads this file as 8 bits: a codec built on that view loses every low byte."""
    rng = np.random.default_rng(3)
    samples = (rng.integers(0, 256, (12, 10, 3)) * 256 + rng.integers(0, 256, (12, 10, 3))).astype(np.uint16)
    write_png(tmp_path / "deep.png", samples, 2, 16)
    codec.encode(tmp_path / "deep.png", tmp_path / "deep.pxl")
    decoded, report = codec.decode(tmp_path / "deep.pxl", tmp_path / "back.png")
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, samples) and report.depth == 16
    assert np.array_equal(reference_samples(tmp_path / "back.png"), samples)


@pytest.mark.parametrize("colour", [2, 6, 4])
def test_8bit_content_at_16_bits_goes_through_the_model(codec, photos, tmp_path, colour):
    """v = 257 h (how converters widen 8 bits): the model codes the high bytes, no low part."""
    from trainer.images.files import load_image

    rgb = load_image(photos[0])[100:116, 100:124]
    gray = rgb[..., :1]
    high = {2: rgb, 6: np.concatenate([rgb, rgb[..., :1]], 2), 4: np.concatenate([gray, rgb[..., 1:2]], 2)}[colour]
    samples = high.astype(np.uint16) * 257
    write_png(tmp_path / "wide.png", samples, colour, 16)
    report = codec.encode(tmp_path / "wide.png", tmp_path / "wide.pxl")
    env = envelope.unpack((tmp_path / "wide.pxl").read_bytes())
    assert (env.representation, env.low, len(env.parts)) == (envelope.SPLIT16, envelope.LOW_IS_HIGH, 1)
    assert report.representation.startswith("split16") and report.depth == 16
    decoded, _ = codec.decode(tmp_path / "wide.pxl", tmp_path / "back.png")
    assert np.array_equal(decoded, samples) and np.array_equal(reference_samples(tmp_path / "back.png"), samples)


def test_an_8bit_photo_with_metadata_is_coded_by_the_model_and_keeps_it(codec, photos, tmp_path):
    from trainer.images.files import load_image

    rgb = load_image(photos[0])[200:232, 200:240]
    chunks = [(b"gAMA", struct.pack(">I", 45455)), (b"tEXt", b"Title\x00a photo")]
    write_png(tmp_path / "meta.png", rgb, 2, 8, chunks=chunks)
    model_only = open_codec(codec.bundle, progress=False, fallback=False)  # a study of the model: its stream kept
    report = model_only.encode(tmp_path / "meta.png", tmp_path / "meta.pxl")
    assert report.representation == "planes" and report.model_bpsp < 7.5
    codec.decode(tmp_path / "meta.pxl", tmp_path / "back.png")
    assert np.array_equal(reference_samples(tmp_path / "back.png"), rgb)
    assert png_chunks(tmp_path / "back.png") == chunks
    codec.encode(tmp_path / "meta.png", tmp_path / "strip.pxl", strip=True)  # --strip: the pixels only
    codec.decode(tmp_path / "strip.pxl", tmp_path / "stripped.png")
    assert png_chunks(tmp_path / "stripped.png") == [] and (tmp_path / "strip.pxl").stat().st_size < (tmp_path / "meta.pxl").stat().st_size


def test_strip_keeps_transparency_keys(codec, tmp_path):
    samples = np.arange(30, dtype=np.uint8).reshape(5, 6, 1) * 8
    write_png(tmp_path / "key.png", samples, 0, 8, transparent=16, chunks=[(b"tEXt", b"k\x00v")])
    codec.encode(tmp_path / "key.png", tmp_path / "key.pxl", strip=True)
    codec.decode(tmp_path / "key.pxl", tmp_path / "back.png")
    assert png_chunks(tmp_path / "back.png") == [(b"tRNS", b"\x00\x10")]


def test_tiff_description_and_icc_come_back(codec, tmp_path):
    import tifffile

    samples = np.random.default_rng(1).integers(0, 65536, (7, 9, 3)).astype(np.uint16)
    icc = bytes(range(200))
    tifffile.imwrite(tmp_path / "a.tif", samples, photometric="rgb", description="scan 42", iccprofile=icc)
    codec.encode(tmp_path / "a.tif", tmp_path / "a.pxl")
    codec.decode(tmp_path / "a.pxl", tmp_path / "back.tif")
    with tifffile.TiffFile(tmp_path / "back.tif") as tif:
        page = tif.pages[0]
        assert np.array_equal(page.asarray(), samples)
        assert page.description == "scan 42" and page.iccprofile == icc


def test_decode_names_the_original_format(codec, tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((4, 4), dtype=np.uint16) + 513)
    assert pixlm("encode", tmp_path / "a.tif", "--quiet").returncode == 0
    wrong = pixlm("decode", tmp_path / "a.pxl", tmp_path / "a.png")
    assert wrong.returncode == 2 and wrong.stderr.strip().splitlines() == [
        f"pixlm: error: {tmp_path / 'a.png'}: {tmp_path / 'a.pxl'} decodes to TIFF; name the output .tif or .tiff"]
    (tmp_path / "a.tif").rename(tmp_path / "orig.tif")
    right = pixlm("decode", tmp_path / "a.pxl", "--quiet")  # default name: the original's suffix
    assert right.returncode == 0 and np.array_equal(reference_samples(tmp_path / "a.tif"),
                                                    reference_samples(tmp_path / "orig.tif"))


def test_training_refuses_16bit_images_instead_of_reducing_them(tmp_path):
    from trainer.images.files import load_image

    write_png(tmp_path / "d.png", np.full((3, 3, 3), 40000, dtype=np.uint16), 2, 16)
    with pytest.raises(ImageModeError, match="16-bit samples"):
        load_image(tmp_path / "d.png")


def _rewrap(data: bytes, edit) -> bytes:
    """A version 2 stream with its payload edited and every CRC recomputed (a damage no CRC catches)."""
    from trainer.codec.container import unpack, pack

    header, payload = unpack(data)
    return pack(header, edit(bytearray(payload)))


def test_a_damaged_integer_payload_is_called_damaged(codec, photos, tmp_path):
    """The integer bundle computes the same tables everywhere: a CRC failure is the payload's."""
    from trainer.images.files import load_image

    image = load_image(photos[0])[300:316, 300:320]
    codec.encode(image, tmp_path / "x.pxl")
    data = (tmp_path / "x.pxl").read_bytes()

    def flip(p):
        p[len(p) // 2] ^= 0x5A
        return bytes(p)

    (tmp_path / "bad.pxl").write_bytes(_rewrap(data, flip))
    with pytest.raises(CodecError) as err:
        codec.decode(tmp_path / "bad.pxl", tmp_path / "bad.png")
    assert str(err.value).startswith("damaged payload") and "this machine" not in str(err.value)
    assert not (tmp_path / "bad.png").exists()


def test_every_damaged_envelope_byte_is_refused_with_one_line(codec, tmp_path):
    rng = np.random.default_rng(7)
    samples = rng.integers(0, 65536, (6, 5, 2)).astype(np.uint16)
    write_png(tmp_path / "la.png", samples, 4, 16, chunks=[(b"tEXt", b"a\x00b")])
    codec.encode(tmp_path / "la.png", tmp_path / "la.pxl")
    data = (tmp_path / "la.pxl").read_bytes()
    for pos in range(4, len(data), max(1, len(data) // 97)):
        bad = bytearray(data)
        bad[pos] ^= 0x41
        (tmp_path / "bad.pxl").write_bytes(bytes(bad))
        with pytest.raises((FormatError, CodecError)) as err:
            codec.decode(tmp_path / "bad.pxl", tmp_path / "bad.png")
        assert "\n" not in str(err.value) and str(err.value)
    for cut in (5, 30, len(data) - 1):
        (tmp_path / "cut.pxl").write_bytes(data[:cut])
        with pytest.raises((FormatError, CodecError)):
            codec.decode(tmp_path / "cut.pxl")
    assert not (tmp_path / "bad.png").exists()


def test_envelope_section_crc_and_version_are_checked():
    env = envelope.Envelope(b"\0" * 16, envelope.JXL, 0, 2, 2, 1, 8, 0, [(b"FMT ", b"{}")], [b"x"])
    data = envelope.pack(env)
    assert envelope.unpack(data).entries == [(b"FMT ", b"{}")]
    with pytest.raises(FormatError, match="invalid header fields"):
        envelope.unpack(envelope.pack(envelope.Envelope(b"\0" * 16, envelope.PLANES, 0, 2, 2, 1, 16, 0, [], [b"x"])))
    assert zlib.crc32(data) != zlib.crc32(data[:-1] + b"y")

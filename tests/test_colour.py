"""The JPEG decoders' colour transform (trainer.engine.colour): the mapping is libjpeg's own, its
inverse is exact on decoded JPEGs (clamped pixels too), and the encoder codes such images as Y, Cb,
Cr planes, smaller, decoded exactly."""

import io
from dataclasses import replace
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from trainer.engine import coder, colour
from trainer.engine.settings import PRESETS, choice_facts
from trainer.engine.tables import make_tables

TABLES = make_tables()


def photo_like(height=96, width=128, seed=3, contrast=1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(x / 9 + c) * 60 + np.cos(y / 13 - c) * 50 for c in range(3)], -1)
    noise = rng.normal(0, 6, (height, width, 3)).cumsum(1) / 4
    return np.clip(128 + contrast * (base + noise), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality=90, subsampling=2) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=quality, subsampling=subsampling)
    return out.getvalue()


CASES = [dict(quality=90, subsampling=2), dict(quality=75, subsampling=1), dict(quality=97, subsampling=0)]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("contrast", [1.0, 3.0])  # 3.0: many channels clamped at 0 or 255
def test_the_mapping_is_libjpegs_and_its_inverse_exact(case, contrast):
    data = jpeg(photo_like(contrast=contrast), **case)
    rgb = imagecodecs.jpeg8_decode(data)
    ycc = imagecodecs.jpeg8_decode(data, outcolorspace="YCBCR")  # libjpeg's own planes: an independent check
    assert np.array_equal(colour.to_rgb(ycc), rgb)
    found = colour.to_ycc(rgb)
    assert found is not None and np.array_equal(colour.to_rgb(found), rgb)
    if contrast > 1:
        assert ((rgb == 0) | (rgb == 255)).any(axis=-1).mean() > 0.05  # the clamped preimages were searched


def test_images_no_jpeg_decoder_made_have_no_planes():
    assert colour.to_ycc(photo_like()) is None
    noise = np.random.default_rng(1).integers(1, 255, (32, 32, 3)).astype(np.uint8)
    assert colour.to_ycc(noise) is None


@pytest.mark.parametrize("preset", ["fast", "max"])
def test_the_encoder_codes_a_decoded_jpeg_as_its_planes(preset):
    """Payload byte 0 bit 4 set, the stream smaller than the same bundle's without `colour`, and
    the image decoded exactly; an alpha channel rides along."""
    rgb = np.asarray(Image.open(io.BytesIO(jpeg(photo_like(), quality=92)))).copy()
    alpha = np.random.default_rng(2).integers(0, 256, rgb.shape[:2] + (1,)).astype(np.uint8)
    settings = replace(PRESETS[preset], colour=1)
    for image in (rgb, np.concatenate([rgb, alpha], -1)):
        payload, _ = coder.encode(image, settings, TABLES)
        plain, _ = coder.encode(image, replace(settings, colour=0), TABLES)
        assert payload[0] & 16 and len(payload) < 0.95 * len(plain)
        assert choice_facts(payload[0], image.shape[2])["jpeg_ycbcr"]
        assert np.array_equal(coder.decode(payload, image.shape, settings, TABLES), image)


def test_other_images_code_as_before_with_colour_on():
    image = photo_like(64, 64)
    payload, _ = coder.encode(image, replace(PRESETS["fast"], colour=1), TABLES)
    assert payload == coder.encode(image, PRESETS["fast"], TABLES)[0]


@pytest.mark.parametrize("preset", ["fast", "max"])
def test_golden_jpeg_streams_decode_and_reencode_to_the_same_bytes(preset, tmp_path):
    """tests/expected/astronaut-64x40-jpeg.png (the astronaut crop through Pillow's JPEG at quality
    85, decoded) and its streams: pinned, so the colour path cannot change unseen; `pixlm info`
    names the planes."""
    from trainer.codec.info import stream_info
    from trainer.codec.registry import open_codec

    expected = Path(__file__).parent / "expected"
    golden = expected / f"astronaut-64x40-jpeg.online-{preset}.pxl"
    codec = open_codec(Path(__file__).parents[1] / "checkpoints" / f"pixlm-online-{preset}", progress=False,
                       fallback=False)
    codec.decode(golden, tmp_path / "back.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back.png")),
                          np.asarray(Image.open(expected / "astronaut-64x40-jpeg.png")))
    codec.encode(expected / "astronaut-64x40-jpeg.png", tmp_path / "again.pxl")
    assert (tmp_path / "again.pxl").read_bytes() == golden.read_bytes()
    assert stream_info(golden.read_bytes())["engine_choices"]["jpeg_ycbcr"]


@pytest.mark.parametrize("preset, date", [(preset, date) for preset in ("fast", "max")
                                          for date in ("2026-12-06", "2026-12-07", "2026-12-07b")] + [("max", "2026-12-07c")])
def test_streams_of_the_previous_bundles_still_decode(preset, date, tmp_path):
    """A re-exported bundle has a new id; the previous ones stay under checkpoints/previous, so an
    archive's streams made before (tests/expected/previous: the golden streams of 4c2152c, before
    the JPEG colour transform, of 9a602e8, before the seen-colours model, of e109611, before
    the lattice found per image, and max's of 3e3cd0d, before the least squares' weight sets per parity) decode through the CLI, finding their bundle by the id in the file."""
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    stream = root / "tests" / "expected" / "previous" / f"astronaut-64x40.online-{preset}-{date}.pxl"
    run = subprocess.run([sys.executable, "-m", "trainer.cli", "decode", str(stream), str(tmp_path / "back.png")],
                         cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back.png")),
                          np.asarray(Image.open(root / "tests" / "expected" / "astronaut-64x40.png").convert("RGB")))

"""A lattice found per image (trainer/engine/lattice.py): the fit finds the converters that made
an image from integer planes, whichever matrix they used, maps every pixel back exactly, refuses
images on no lattice, and the engine codes the planes smaller and round-trips them, through the
shipped bundles too; a damaged lattice in a payload is refused in one line."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from benchmarks.make_video_set import video_frame
from trainer.api import info
from trainer.codec.registry import open_codec
from trainer.engine import coder, lattice
from trainer.engine.settings import PRESETS
from trainer.engine.tables import make_tables
from trainer.errors import PixlmError

TABLES = make_tables()
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def scene(height: int = 128, width: int = 160, seed: int = 0) -> np.ndarray:
    """A photo-like RGB image: smooth colour fields, edges, texture (never a shared image)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([120 + 90 * np.sin(3 * x + 1), 110 + 80 * np.cos(4 * y), 100 + 70 * np.sin(2 * (x + y))], -1)
    base[(x - 0.4) ** 2 + (y - 0.5) ** 2 < 0.05] += (60, -40, 20)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).round().astype(np.uint8)


def converted(planes: np.ndarray, matrix: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Integer planes to RGB the way a float converter does it: one linear map, one rounding."""
    return np.clip(np.floor(planes.astype(float) @ matrix.T + offset + 0.5), 0, 255).astype(np.uint8)


# BT.601 full range (libjpeg's matrix in floating point) and BT.2020 limited range: matrices the
# fit is never told about
BT601_FULL = (np.array([[1, 0, 1.402], [1, -0.344136, -0.714136], [1, 1.772, 0]]), np.array([1.402, -1.058272, 1.772]) * -128)
_K = np.array([255 / 219, 255 / 224, 255 / 224])
BT2020_LIMITED = (np.array([[1, 0, 1.4746], [1, -0.16455, -0.57135], [1, 1.8814, 0]]) * _K,
                  -(np.array([[1, 0, 1.4746], [1, -0.16455, -0.57135], [1, 1.8814, 0]]) * _K) @ [16, 128, 128])


def random_planes(height=128, width=160, seed=1):
    """Y, Cb, Cr planes: detailed luma, smooth chroma held over 2x2 blocks (4:2:0)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    luma = 60 + 100 * (x + y) / (height + width) + 25 * np.sin(x / 5.0) + rng.normal(0, 4, (height, width))
    hy, hx = np.mgrid[0:height // 2, 0:width // 2] / (height // 2)
    cb = 128 + 40 * np.sin(3 * hx + 2 * hy) + rng.normal(0, 2, hx.shape)
    cr = 128 + 35 * np.cos(4 * hy - hx) + rng.normal(0, 2, hx.shape)
    chroma = np.repeat(np.repeat(np.stack([cb, cr], -1), 2, 0), 2, 1)
    return np.clip(np.concatenate([luma[..., None], chroma], -1).round(), 16, 235).astype(np.int64)


def fixed_point(planes: np.ndarray, matrix: np.ndarray, offset: np.ndarray, bits: int = 20) -> np.ndarray:
    """The same in integer arithmetic, as converters written for speed do it (weights in 2^-bits,
    one shift, the rounding half added once)."""
    weights, base = np.round(matrix * (1 << bits)).astype(np.int64), np.round(offset * (1 << bits)).astype(np.int64)
    return np.clip((planes @ weights.T + base + (1 << (bits - 1))) >> bits, 0, 255).astype(np.uint8)


_BT601 = np.array([[1, 0, 1.402], [1, -0.344136, -0.714136], [1, 1.772, 0]])
BT601_LIMITED = (_BT601 * _K, -(_BT601 * _K) @ [16, 128, 128])


@pytest.mark.parametrize("name, convert, transform", [("bt601-full", converted, BT601_FULL),
                                                      ("bt2020-limited", converted, BT2020_LIMITED),
                                                      ("bt601-limited-fixed-point", fixed_point, BT601_LIMITED)])
def test_the_fit_finds_any_converters_lattice_and_maps_every_pixel_back(name, convert, transform):
    image = convert(random_planes(), *transform)
    found = lattice.fit(image)
    assert found is not None, name
    fitted, planes = found
    assert np.array_equal(lattice.to_rgb(planes, fitted), image)
    # the planes found are the converter's own (up to order and sign): each plane's unit step
    # moves the colour as one of the matrix's columns does
    steps = np.abs(fitted.matrix / float(1 << lattice.SHIFT))
    for column in np.abs(transform[0]).T:
        assert min(np.abs(steps - column[:, None]).max(0)) < 0.01, (name, column, steps)  # a small image pins them less
    again = lattice.Lattice.from_bytes(fitted.to_bytes())
    assert np.array_equal(again.matrix, fitted.matrix) and np.array_equal(again.offset, fitted.offset)


def test_a_video_frame_codes_smaller_as_its_planes_and_round_trips():
    """make_video_set's pipeline (BT.709 limited range, 4:2:0, triangle upsampling) on a scene."""
    assert PRESETS["fast"].lattice == 1 and PRESETS["max"].lattice == 1  # on in the shipped presets
    image = np.ascontiguousarray(video_frame(scene()))
    settings = replace(PRESETS["fast"], parity=1)
    on, _ = coder.encode(image, settings, TABLES)
    off, _ = coder.encode(image, replace(settings, lattice=0), TABLES)
    assert on[0] & 32 and not off[0] & 32  # the payload's first byte says which
    assert len(on) < 0.9 * len(off), (len(on), len(off))
    assert np.array_equal(coder.decode(on, image.shape, settings, TABLES), image)
    with_alpha = np.ascontiguousarray(np.concatenate([image, np.full(image.shape[:2] + (1,), 200, np.uint8)], -1))
    payload, _ = coder.encode(with_alpha, settings, TABLES)
    assert payload[0] & 32 and np.array_equal(coder.decode(payload, with_alpha.shape, settings, TABLES), with_alpha)


def test_images_on_no_lattice_are_coded_as_given():
    assert lattice.fit(scene()) is None
    # a converter that rounds each term apart (table-driven ones: ffmpeg's swscale) leaves colours
    # up to a level off any one rounding of a linear map: refused, not mis-fitted
    y, cb, cr = np.moveaxis(random_planes().astype(float), -1, 0)
    luma = np.round((y - 16) * 255 / 219)
    per_term = np.stack([luma + np.round(1.596 * (cr - 128)), luma - np.round(0.392 * (cb - 128)) - np.round(0.813 * (cr - 128)),
                         luma + np.round(2.017 * (cb - 128))], -1)
    assert lattice.fit(np.clip(per_term, 0, 255).astype(np.uint8)) is None
    gray_ramp = np.repeat(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 8, 0), 3, 2)
    assert lattice.fit(np.ascontiguousarray(gray_ramp)) is None  # too few colours to tell
    payload, _ = coder.encode(scene(), replace(PRESETS["fast"], parity=1), TABLES)
    assert not payload[0] & 32


def test_a_damaged_lattice_is_refused_in_one_line():
    image = np.ascontiguousarray(video_frame(scene(64, 64)))
    settings = replace(PRESETS["fast"], parity=1)
    payload, _ = coder.encode(image, settings, TABLES)
    assert payload[0] & 32
    singular = payload[:1] + bytes(lattice.BYTES) + payload[1 + lattice.BYTES:]
    with pytest.raises(PixlmError, match="lattice is not an invertible map") as error:
        coder.decode(singular, image.shape, settings, TABLES)
    assert "\n" not in str(error.value)
    with pytest.raises(PixlmError, match="of the lattice's 96 bytes"):
        coder.decode(payload[:40], image.shape, settings, TABLES)


def test_the_shipped_bundle_round_trips_a_video_frame_read_back_by_pillow(tmp_path):
    source = tmp_path / "frame.png"
    Image.fromarray(video_frame(scene())).save(source)
    codec = open_codec(ROOT / "checkpoints" / "pixlm-online-fast", progress=False, fallback=False)
    codec.encode(source, tmp_path / "frame.pxl")
    codec.decode(tmp_path / "frame.pxl", tmp_path / "back.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back.png")), np.asarray(Image.open(source)))
    choices = info(tmp_path / "frame.pxl")["engine_choices"]  # what `pixlm info` prints
    assert choices["lattice"] and not choices["jpeg_ycbcr"] and set(choices["channel_order"].split(",")) == {"P1", "P2", "P3"}

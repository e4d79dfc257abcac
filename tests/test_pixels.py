import numpy as np
import pytest
from PIL import Image

from trainer.tokenize.pixels import FILL, Patch, context_values, patch_grid, patch_values, put_patch
from trainer.images.files import ImageModeError, load_image, to_image


@pytest.mark.parametrize("height,width", [(1, 1), (5, 17), (7, 513), (16, 16), (33, 31)])
@pytest.mark.parametrize("ph,pw", [(16, 16), (8, 4)])
def test_patches_tile_every_pixel_once_and_round_trip(height, width, ph, pw):
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    patches = patch_grid(height, width, ph, pw)
    covered = np.zeros((height, width), dtype=int)
    rebuilt = np.zeros_like(image)
    for p in patches:
        assert 1 <= p.height <= ph and 1 <= p.width <= pw
        covered[p.y:p.y + p.height, p.x:p.x + p.width] += 1
        values = patch_values(image, p)
        assert values.size == p.height * p.width * 3  # edge patches are smaller, never padded
        put_patch(rebuilt, p, values)
    assert (covered == 1).all()
    assert np.array_equal(rebuilt, image)
    assert sum(p.height * p.width for p in patches) == height * width


def test_scan_order_is_rows_then_pixels_then_channels():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    values = patch_values(image, Patch(0, 0, 2, 3))
    assert values.tolist() == list(range(18))  # (y, x, c) raster order, channels interleaved


@pytest.mark.parametrize("mode,channels", [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)])
def test_supported_modes_round_trip(tmp_path, mode, channels):
    rng = np.random.default_rng(1)
    array = rng.integers(0, 256, (9, 11, channels), dtype=np.uint8)
    path = tmp_path / "x.png"
    to_image(array).save(path)
    assert Image.open(path).mode == mode
    loaded = load_image(path)
    assert loaded.shape == (9, 11, channels) and np.array_equal(loaded, array)


@pytest.mark.parametrize("mode,words", [("P", "palette indices"), ("I;16", "16-bit samples"), ("I", "mode I is not supported"),
                                        ("CMYK", "not supported"), ("F", "mode F is not supported")])
def test_modes_training_cannot_use_are_refused_clearly(mode, words):
    """Training reads 8-bit intensities: palette indices and 16-bit samples are refused, never reduced."""
    image = Image.new(mode, (4, 4))
    with pytest.raises(ImageModeError, match=words):
        load_image(image)


def test_unreadable_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageModeError, match="broken.png: truncated file"):
        load_image(path)
    path.write_bytes(b"GIF89a garbage")
    with pytest.raises(ImageModeError, match=r"broken.png: not a readable image \(unknown format\)"):
        load_image(path)


def test_context_is_only_rows_above_and_fixed_shape():
    image = np.random.default_rng(2).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    ctx = context_values(image, Patch(8, 4, 8, 8), rows=2, margin=4, patch_width=8)
    assert ctx.shape == (2, 16, 3)
    assert np.array_equal(ctx[:, :, :], image[6:8, 0:16].astype(np.int16))
    # top row and left/right edges: positions outside the image are FILL
    top = context_values(image, Patch(0, 0, 8, 8), rows=2, margin=4, patch_width=8)
    assert (top == FILL).all()
    edge = context_values(image, Patch(8, 16, 8, 4), rows=1, margin=4, patch_width=8)
    assert np.array_equal(edge[0, :8], image[7, 12:20].astype(np.int16))
    assert (edge[0, 8:] == FILL).all()

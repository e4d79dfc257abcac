"""Tokenization step 1: image -> subpixel values 0..255 in a declared scan order, cut into patches.

Scan order (`SCAN_ORDER`): inside a patch, rows top to bottom, pixels left to right, and the
channels of one pixel interleaved (R, G, B for RGB) -- the order in which a decoder produces them.
Patches tile the image row-major; edge patches are simply smaller (nothing padded is ever coded).
The in-context prior of a patch is the `context_rows` pixel rows directly above it, widened by
`context_margin` columns each side: all of it lies in earlier patch rows, so a decoder that
decodes patch rows in order (every patch of a row at once, as one batch) already has it.
"""

import zlib
from dataclasses import dataclass
import numpy as np

from trainer.images.picture import ImageModeError

SCAN_ORDER = "patch rows top-down; in a patch: rows top-down, pixels left-right, channels interleaved"
# Modes coded losslessly, with their channel count (the count goes into the stream).
CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
MODES = {v: k for k, v in CHANNELS.items()}  # channel count -> mode name
CHANNEL_NAMES = {1: "gray", 2: "gray, alpha", 3: "red, green, blue", 4: "red, green, blue, alpha"}
FILL = -1  # marks a context position with no pixel (outside the image)


@dataclass(frozen=True)
class Patch:
    y: int
    x: int
    height: int
    width: int


def patch_grid(height: int, width: int, patch_height: int, patch_width: int) -> list[Patch]:
    """Row-major tiling; the last row/column of patches is smaller when sizes do not divide."""
    if height < 1 or width < 1:
        raise ImageModeError(f"empty image ({width}x{height})")
    return [Patch(y, x, min(patch_height, height - y), min(patch_width, width - x))
            for y in range(0, height, patch_height) for x in range(0, width, patch_width)]


def patch_values(image: np.ndarray, patch: Patch) -> np.ndarray:
    """Subpixels of a patch in scan order, uint8, length height * width * C."""
    return image[patch.y:patch.y + patch.height, patch.x:patch.x + patch.width].reshape(-1)


def put_patch(image: np.ndarray, patch: Patch, values: np.ndarray) -> None:
    """Write decoded scan-order values back (inverse of patch_values)."""
    image[patch.y:patch.y + patch.height, patch.x:patch.x + patch.width] = values.reshape(
        patch.height, patch.width, image.shape[2])


def context_values(image: np.ndarray, patch: Patch, rows: int, margin: int, patch_width: int) -> np.ndarray:
    """The rows above `patch`, fixed shape (rows, margin + patch_width + margin, C), int16.

    The width uses the nominal `patch_width` (not the edge patch's), so every patch of a recipe
    has the same context layout; positions outside the image hold FILL. Only rows < patch.y are
    read: pixels a decoder has before it starts this patch.
    """
    channels = image.shape[2]
    out = np.full((rows, margin + patch_width + margin, channels), FILL, dtype=np.int16)
    y0, x0 = patch.y - rows, patch.x - margin
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = patch.y, min(x0 + out.shape[1], image.shape[1])
    if ye > ys and xe > xs:
        out[ys - y0:ye - y0, xs - x0:xe - x0] = image[ys:ye, xs:xe]
    return out


def crop_positions(shape, patch_h: int, patch_w: int, count: int, seed: int, name: str) -> list[Patch]:
    """`count` random full-size crops (smaller only if the image is), seeded per image."""
    height, width = shape[:2]
    h, w = min(patch_h, height), min(patch_w, width)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    ys = rng.integers(0, height - h + 1, count)
    xs = rng.integers(0, width - w + 1, count)
    return [Patch(int(y), int(x), h, w) for y, x in zip(ys, xs)]

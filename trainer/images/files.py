"""Image files as the rest of pixlm meets them: folders of images, 8-bit arrays for training and
the bench, and outputs written whole or not at all."""

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from trainer.images.picture import ImageModeError, picture_bytes, plain_picture, read_picture  # noqa: F401 (ImageModeError: one import place)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".pnm"}


def image_files(folder: Path) -> list[Path]:
    """Image files below a folder (recursive, sorted), by suffix."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_samples(source) -> np.ndarray:
    """(H, W, C) samples at full depth (uint8, or uint16 for 16-bit files) of an L/LA/RGB/RGBA image;
    palette and 1/2/4-bit images are refused with one line (their values are not intensities)."""
    picture = read_picture(source)
    name = "image" if not isinstance(source, (str, Path)) else source
    if picture.layout == "P":
        raise ImageModeError(f"{name}: palette image: its values are palette indices, not intensities")
    if picture.depth not in (8, 16):
        raise ImageModeError(f"{name}: {picture.depth}-bit samples; this reads 8- and 16-bit images")
    return picture.samples


def load_image(source) -> np.ndarray:
    """(H, W, C) uint8 array of an 8-bit L/LA/RGB/RGBA image (training, studies). Deeper images are
    refused, never reduced: `pixlm encode` codes them, a model trained on 8 bits does not."""
    samples = load_samples(source)
    if samples.dtype != np.uint8:
        raise ImageModeError(f"{'image' if not isinstance(source, (str, Path)) else source}: 16-bit samples; this reads 8-bit images only (pixlm encode codes 16-bit files)")
    return samples


def to_image(array: np.ndarray):
    """A PIL image of an (H, W, C) uint8 array (L, LA, RGB or RGBA)."""
    from PIL import Image

    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[array.shape[2]]
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array, mode=mode)


def save_png(array: np.ndarray, path) -> None:
    """An (H, W, C) uint8 array as a plain PNG."""
    write_file(path, picture_bytes(plain_picture(array)))


def write_file(path, data: bytes) -> None:
    """Write `data` to `path` whole (`written_whole`)."""
    with written_whole(path) as temporary:
        temporary.write_bytes(data)


@contextmanager
def written_whole(path):
    """A temporary path beside `path` to write; renamed to `path` when the block ends, removed if it
    raises (a killed or failed run never leaves a torn file under the real name)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def center_crop(image: np.ndarray, crop: tuple[int, int] | None) -> np.ndarray:
    """The central (width, height) = `crop` of an (H, W, C) image (a smaller side stays whole)."""
    if crop is None:
        return image
    h, w = image.shape[:2]
    ch, cw = min(crop[1], h), min(crop[0], w)
    return np.ascontiguousarray(image[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw])

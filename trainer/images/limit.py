"""The size an image file declares, read from its header before any sample is decoded, and the
limit it is held to: a 5 MB file may declare 30000x30000 16-bit pixels (5.4 GB decoded), and is
refused in one line before anything is allocated. The limit is the user's to raise
(`--max-pixels`, as Pillow's MAX_IMAGE_PIXELS and libjxl's limits are)."""

import io
import struct

from trainer.errors import PixlmError

MAX_PIXELS = 1 << 28  # 268 M pixels: a 200-megapixel scan is read, 30000x30000 is not, by default


class ImageTooLarge(PixlmError):
    """An image whose declared size exceeds the pixel limit."""


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) an image file's first bytes declare (PNG, PNM, TIFF; other formats through
    Pillow's lazy open), None where they do not say (the reader refuses the file later)."""
    from trainer.images import png, pnm, tiff

    if data.startswith(png.SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if pnm.is_pnm(data):
        try:
            return pnm.read_header(data)[1:3]
        except pnm.PnmError:  # a PNM pixlm does not read: its reader says so
            return None
    if tiff.is_tiff(data):
        return tiff.declared_size(data)
    from PIL import Image

    try:
        with unlimited_pillow(), Image.open(io.BytesIO(data)) as image:  # reads the header only
            return image.size
    except Exception:  # noqa: BLE001 (not an image Pillow sizes: its reader gives the one-line reason)
        return None


def check(size: tuple[int, int] | None, name: str, max_pixels: int | None = MAX_PIXELS) -> None:
    """Refuse a declared size above `max_pixels` (None or 0: no limit) in one line."""
    if size is None or not max_pixels:
        return
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLarge(f"{name}: declares {width}x{height} = {width * height:,} pixels, above the limit of "
                            f"{max_pixels:,} (--max-pixels N raises it, 0 removes it)")


class unlimited_pillow:
    """Pillow's own decompression-bomb limit lifted for one read: pixlm's (checked before) decides."""

    def __enter__(self):
        from PIL import Image

        self.before, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None

    def __exit__(self, *exc):
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = self.before

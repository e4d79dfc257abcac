"""The colour transform of JPEG decoders: images that a libjpeg-family decoder made from Y, Cb, Cr
planes are coded as those planes.

Why: such a decoder computes each RGB pixel from integer Y, Cb, Cr by fixed integer tables
(libjpeg's jdcolor.c, shared by libjpeg-turbo, Pillow, imagecodecs, browsers), so the image's
pixels lie on a lattice about 1/4.2 as dense as RGB (log2 4.23 = 2.1 bits a pixel the RGB coder
would spend on points that never occur), and Cb, Cr were usually subsampled and interpolated,
smooth planes the engine predicts far better than R, G, B. The encoder inverts the mapping
(`to_ycc`: every pixel, or the image is not one); the decoder applies it (`to_rgb`), integer
arithmetic both ways, the same on every machine.
"""

import numba
import numpy as np

SCALEBITS = 16
ONE_HALF = 1 << (SCALEBITS - 1)
# libjpeg's FIX(1.40200), FIX(1.77200), FIX(0.71414), FIX(0.34414): round(x * 2**16)
FIX_CR_R, FIX_CB_B, FIX_CR_G, FIX_CB_G = 91881, 116130, 46802, 22554

_X = np.arange(256, dtype=np.int64) - 128
CR_R = (FIX_CR_R * _X + ONE_HALF) >> SCALEBITS
CB_B = (FIX_CB_B * _X + ONE_HALF) >> SCALEBITS
CR_G = -FIX_CR_G * _X
CB_G = -FIX_CB_G * _X + ONE_HALF


@numba.njit(cache=True, nogil=True, inline="always")
def _rgb(y, cb, cr, cr_r, cb_b, cr_g, cb_g):
    return (min(255, max(0, y + cr_r[cr])), min(255, max(0, y + ((cb_g[cb] + cr_g[cr]) >> SCALEBITS))),
            min(255, max(0, y + cb_b[cb])))


@numba.njit(cache=True, nogil=True)
def _to_rgb(ycc, out, cr_r, cb_b, cr_g, cb_g):
    for i in range(ycc.shape[0]):
        for j in range(ycc.shape[1]):
            r, g, b = _rgb(np.int64(ycc[i, j, 0]), np.int64(ycc[i, j, 1]), np.int64(ycc[i, j, 2]), cr_r, cb_b, cr_g, cb_g)
            out[i, j, 0], out[i, j, 1], out[i, j, 2] = r, g, b


def to_rgb(image: np.ndarray) -> np.ndarray:
    """The image with its first three channels (Y, Cb, Cr) mapped to RGB as libjpeg maps them."""
    out = image.copy()
    _to_rgb(image, out, CR_R, CB_B, CR_G, CB_G)
    return out


@numba.njit(cache=True, nogil=True)
def _near(R, G, B, cr_r, cb_b, cr_g, cb_g):
    """The preimage within 2 of the approximate inverse (an unclamped pixel has at most one), or -1s."""
    y0 = (19595 * R + 38470 * G + 7471 * B + ONE_HALF) >> SCALEBITS
    cb0 = 128 + (((B - y0) * 578 + 512) >> 10)
    cr0 = 128 + (((R - y0) * 730 + 512) >> 10)
    for y in range(max(0, y0 - 2), min(255, y0 + 2) + 1):
        for cb in range(max(0, cb0 - 2), min(255, cb0 + 2) + 1):
            for cr in range(max(0, cr0 - 2), min(255, cr0 + 2) + 1):
                if _rgb(y, cb, cr, cr_r, cb_b, cr_g, cb_g) == (R, G, B):
                    return y, cb, cr
    return -1, -1, -1


@numba.njit(cache=True, nogil=True)
def _clamped(R, G, B, cb_l, cr_l, cr_r, cb_b, cr_g, cb_g):
    """A preimage of a pixel with a channel at 0 or 255 (many map to it): the one whose chroma lies
    nearest (cb_l, cr_l), the left neighbour's, so that it codes cheaply; y follows from an
    unclamped channel, or is searched when all three are clamped. -1s if none."""
    for radius in range(256):
        for cb in range(max(0, cb_l - radius), min(255, cb_l + radius) + 1):
            for cr in range(max(0, cr_l - radius), min(255, cr_l + radius) + 1):
                if max(abs(cb - cb_l), abs(cr - cr_l)) != radius:
                    continue
                if 0 < R < 255:
                    lo = hi = R - cr_r[cr]
                elif 0 < B < 255:
                    lo = hi = B - cb_b[cb]
                elif 0 < G < 255:
                    lo = hi = G - ((cb_g[cb] + cr_g[cr]) >> SCALEBITS)
                else:
                    lo, hi = 0, 255
                for y in range(max(0, lo), min(255, hi) + 1):
                    if _rgb(y, cb, cr, cr_r, cb_b, cr_g, cb_g) == (R, G, B):
                        return y, cb, cr
    return -1, -1, -1


@numba.njit(cache=True, nogil=True)
def _to_ycc(image, out, cr_r, cb_b, cr_g, cb_g):
    """Fill out's first three channels with a preimage of every pixel; False at the first pixel
    that has none (an image no JPEG decoder made: most photos fail within a few pixels)."""
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            R, G, B = np.int64(image[i, j, 0]), np.int64(image[i, j, 1]), np.int64(image[i, j, 2])
            y, cb, cr = _near(R, G, B, cr_r, cb_b, cr_g, cb_g)
            if y < 0:
                if 0 < R < 255 and 0 < G < 255 and 0 < B < 255:
                    return False
                cb_l, cr_l = (out[i, j - 1, 1], out[i, j - 1, 2]) if j > 0 else (128, 128)
                y, cb, cr = _clamped(R, G, B, np.int64(cb_l), np.int64(cr_l), cr_r, cb_b, cr_g, cb_g)
                if y < 0:
                    return False
            out[i, j, 0], out[i, j, 1], out[i, j, 2] = y, cb, cr
    return True


def to_ycc(image: np.ndarray) -> np.ndarray | None:
    """(H, W, C >= 3) uint8 with its first three channels as Y, Cb, Cr that `to_rgb` maps back to
    the image exactly, or None if some pixel is on no JPEG decoder's lattice."""
    out = image.copy()
    return out if _to_ycc(image, out, CR_R, CB_B, CR_G, CB_G) else None


@numba.njit(cache=True, nogil=True)
def _count_near(image, cr_r, cb_b, cr_g, cb_g):
    found = 0
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            R, G, B = np.int64(image[i, j, 0]), np.int64(image[i, j, 1]), np.int64(image[i, j, 2])
            found += _near(R, G, B, cr_r, cb_b, cr_g, cb_g)[0] >= 0
    return found


def lattice_fraction(image: np.ndarray) -> float:
    """The share of pixels with an unclamped preimage (a decoded JPEG: ~1; any other image: ~1/4.2)."""
    return _count_near(image, CR_R, CB_B, CR_G, CB_G) / (image.shape[0] * image.shape[1])

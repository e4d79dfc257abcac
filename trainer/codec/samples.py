"""The sample planes of an enveloped picture (trainer.codec.envelope) and the classical coders
of its parts: what is not a plain 8-bit image is taken apart here and put back exactly.

- 16-bit samples split into high bytes (an 8-bit image the model codes) and low bytes. Files that
  hold 8-bit data at 16 bits (v = 257 h, as most converters widen, or v = 256 h) need no low part.
- The low bytes otherwise go to LZMA: sensor noise, which no photo model of 8-bit values predicts.
- JPEG-XL lossless (libjxl through imagecodecs) codes the samples whole at any depth 1..16: on true
  16-bit content it is far smaller than any split (measured in docs/FORMAT.md), and it is the coder
  of palette indices and 1/2/4-bit images.
"""

import lzma

import numpy as np

from trainer.codec.envelope import LOW_IS_HIGH, LOW_PART, LOW_ZERO

JXL_EFFORT = 7  # effort 9 was larger on 16-bit photo crops (6.4696 vs 6.4197 bpsp, docs/FORMAT.md's bench) for ~5x the time


def split16(samples: np.ndarray) -> tuple[np.ndarray, int, bytes | None]:
    """(high bytes, low mode, LZMA of the low bytes or None) of uint16 samples."""
    high = (samples >> 8).astype(np.uint8)
    low = (samples & 0xFF).astype(np.uint8)
    if not low.any():
        return high, LOW_ZERO, None
    if np.array_equal(low, high):
        return high, LOW_IS_HIGH, None
    return high, LOW_PART, lzma.compress(low.tobytes(), preset=9)


def join16(high: np.ndarray, low_mode: int, low_part: bytes | None) -> np.ndarray:
    """Inverse of split16; ValueError on a low part of the wrong size."""
    wide = high.astype(np.uint16) << 8
    if low_mode == LOW_IS_HIGH:
        return wide | high
    if low_mode == LOW_ZERO:
        return wide
    try:
        low = np.frombuffer(lzma.decompress(low_part), dtype=np.uint8)
    except lzma.LZMAError as err:
        raise ValueError(f"the low-byte part does not decompress ({err})") from None
    if low.size != high.size:
        raise ValueError(f"the low-byte part holds {low.size} samples, the image {high.size}")
    return wide | low.reshape(high.shape)


def jxl_encode(samples: np.ndarray) -> bytes:
    """JPEG-XL lossless of (H, W, C) uint8/uint16 samples, checked to decode exactly."""
    import imagecodecs

    plane = np.ascontiguousarray(samples if samples.shape[2] > 1 else samples[..., 0])
    data = imagecodecs.jpegxl_encode(plane, lossless=True, distance=0, effort=JXL_EFFORT, numthreads=1)
    if not np.array_equal(jxl_decode(data, samples.shape, samples.dtype), samples):
        raise ValueError("libjxl did not round-trip these samples")  # never seen; never written either
    return data


def jxl_decode(data: bytes, shape: tuple, dtype) -> np.ndarray:
    import imagecodecs

    try:
        decoded = imagecodecs.jpegxl_decode(data, numthreads=1)
    except Exception as err:  # a damaged part: one line
        raise ValueError(f"the JPEG-XL part does not decode ({type(err).__name__}: {err})") from None
    decoded = decoded.reshape(decoded.shape[0], decoded.shape[1], -1)
    if decoded.shape != tuple(shape) or decoded.dtype != np.dtype(dtype):
        raise ValueError(f"the JPEG-XL part holds {decoded.dtype} {decoded.shape}, the header says {np.dtype(dtype)} {tuple(shape)}")
    return decoded

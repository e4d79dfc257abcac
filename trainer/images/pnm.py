"""Binary PGM/PPM (P5, P6) at any maxval 1..65535, read and written exactly (Pillow cuts 16-bit PPM
to 8 bits). Samples above 255 are two bytes, big-endian, as the format says."""

import re

import numpy as np
from trainer.errors import PixlmError

_HEADER = re.compile(rb"(P[56])(?:\s|#[^\n]*\n)+(\d+)(?:\s|#[^\n]*\n)+(\d+)(?:\s|#[^\n]*\n)+(\d+)\s")


class PnmError(PixlmError):
    """A PNM file pixlm cannot read exactly."""


def is_pnm(data: bytes) -> bool:
    return data[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"P7", b"Pf", b"PF")


def read_header(data: bytes) -> tuple[bytes, int, int, int, int]:
    """(magic, width, height, maxval, offset of the samples) of a P5/P6 file's first bytes."""
    if data[:2] not in (b"P5", b"P6"):
        raise PnmError(f"PNM type {data[:2].decode('latin-1')} is not supported (binary P5/P6 only)")
    match = _HEADER.match(data)
    if not match:
        raise PnmError("corrupt PNM header")
    magic, width, height, maxval = match.group(1), *map(int, match.groups()[1:])
    if not (0 < width and 0 < height and 0 < maxval < 65536):
        raise PnmError(f"invalid PNM header ({width}x{height}, maxval {maxval})")
    return magic, width, height, maxval, match.end()


def samples_of(body: bytes, rows: int, width: int, magic: bytes, maxval: int) -> np.ndarray:
    """(rows, W, C) samples of the sample bytes of `rows` rows."""
    channels = 1 if magic == b"P5" else 3
    dtype = np.dtype(">u2") if maxval > 255 else np.dtype(np.uint8)
    count = width * rows * channels
    if len(body) < count * dtype.itemsize:
        raise PnmError(f"truncated PNM ({len(body)} of {count * dtype.itemsize} bytes)")
    samples = np.frombuffer(body, dtype=dtype, count=count).reshape(rows, width, channels)
    if samples.max() > maxval:
        raise PnmError(f"a sample exceeds the PNM's maxval {maxval}")
    return samples.astype(np.uint16 if maxval > 255 else np.uint8)


def decode(data: bytes) -> tuple[np.ndarray, int, bytes]:
    """(samples (H, W, C) uint8 or uint16, maxval, magic) of a P5/P6 file."""
    magic, width, height, maxval, offset = read_header(data)
    return samples_of(data[offset:], height, width, magic, maxval), maxval, magic


def header(width: int, height: int, channels: int, maxval: int) -> bytes:
    return (b"P5" if channels == 1 else b"P6") + f"\n{width} {height}\n{maxval}\n".encode()


def body(samples: np.ndarray, maxval: int) -> bytes:
    return samples.astype(">u2" if maxval > 255 else np.uint8).tobytes()


def encode(samples: np.ndarray, maxval: int) -> bytes:
    height, width, channels = samples.shape
    return header(width, height, channels, maxval) + body(samples, maxval)

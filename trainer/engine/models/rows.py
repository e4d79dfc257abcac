"""The causal neighbourhood: the last three rows of values, of every sub-predictor's |error|, of the
final |error| and the final signed error, padded by PAD columns on each side.

Rows are used cyclically: `rows_at(y - y0)` gives the indices of rows y, y-1, y-2."""

from collections import namedtuple

import numba
import numpy as np

PAD = 2  # columns on each side of a row

Rows = namedtuple("Rows", "V err fin res")  # values; |errors| per sub-predictor; final |error|; final signed error


@numba.njit(cache=True, nogil=True)
def new(width, channels, k):
    cols = width + 2 * PAD
    return Rows(np.full((3, cols, channels), 128, dtype=np.int64), np.zeros((3, cols, channels, k), dtype=np.int64),
                np.zeros((3, cols, channels), dtype=np.int64), np.zeros((3, cols, channels), dtype=np.int64))


@numba.njit(cache=True, nogil=True, inline="always")
def rows_at(i):
    return i % 3, (i + 2) % 3, (i + 1) % 3


@numba.njit(cache=True, nogil=True)
def start_row(rows, r0, r1):
    """Left border: the first pixel of the row above; no errors."""
    for c in range(rows.V.shape[2]):
        rows.V[r0, 0, c] = rows.V[r1, PAD, c]
        rows.V[r0, 1, c] = rows.V[r1, PAD, c]
        for i in range(PAD):
            _clear(rows, r0, i, c)


@numba.njit(cache=True, nogil=True)
def end_row(rows, r0, width):
    """Right border: the row's last pixel; no errors."""
    for c in range(rows.V.shape[2]):
        for i in range(PAD):
            rows.V[r0, width + PAD + i, c] = rows.V[r0, width + PAD - 1, c]
            _clear(rows, r0, width + PAD + i, c)


@numba.njit(cache=True, nogil=True, inline="always")
def _clear(rows, r, i, c):
    rows.fin[r, i, c] = 0
    rows.res[r, i, c] = 0
    for k in range(rows.err.shape[3]):
        rows.err[r, i, c, k] = 0


@numba.njit(cache=True, nogil=True, inline="always")
def keep(rows, r0, X, c, v, v16, mu):
    """The coded value and its final error."""
    rows.V[r0, X, c] = v
    rows.fin[r0, X, c] = abs(v16 - mu)
    rows.res[r0, X, c] = v16 - mu

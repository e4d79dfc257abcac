"""Normalized LMS (integer): a correction of the blend from the corrections' inputs, one weight set
per channel, error-energy class (and with `parity`, pixel-position parity). Step 2**-lms_shift."""

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def new(sets, n):
    return np.zeros((sets, n), dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def predict(w, ws, u, n):
    """(the correction in 1/16 pixel, |u|^2)."""
    dot, norm = 0, 0
    for k in range(n):
        norm += u[k] * u[k]
        dot += w[ws, k] * u[k]
    return dot >> 14, norm


@numba.njit(cache=True, nogil=True)
def update(w, ws, u, n, e, norm, shift):
    den = (norm + 256) << shift
    for k in range(n):
        step = (e * u[k]) << 14
        w[ws, k] += step // den if step >= 0 else -((-step) // den)

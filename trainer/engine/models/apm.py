"""An adaptive probability map (SSE): a probability refined by a context's own map of it,
interpolated between 33 points of the stretched domain, each point moving toward the coded bit
at rate 2**-APM_RATE."""

import numba
import numpy as np

from trainer.engine.logistic import SQUASH_POINTS, squash

APM_RATE = 7


@numba.njit(cache=True, nogil=True)
def new(contexts):
    apm = np.zeros(contexts * 33, dtype=np.int64)
    for i in range(apm.shape[0]):
        apm[i] = squash(((i % 33) - 16) * 128, SQUASH_POINTS) * 16
    return apm


@numba.njit(cache=True, nogil=True, inline="always")
def refine(apm, context, d):
    """(the map's probability in 1/4096 at stretched d of context, the point index, its weight)."""
    s = d + 2048
    low_w = s & 127
    j = context * 33 + (s >> 7)
    return (apm[j] * (128 - low_w) + apm[j + 1] * low_w) >> 11, j, low_w


@numba.njit(cache=True, nogil=True, inline="always")
def update(apm, j, low_w, bit):
    target = bit << 16
    apm[j] += ((target - apm[j]) * (128 - low_w)) >> (APM_RATE + 7)
    apm[j + 1] += ((target - apm[j + 1]) * low_w) >> (APM_RATE + 7)

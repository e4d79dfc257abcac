"""A gated logistic mixer: p = squash(w . x), x the stretched inputs (any number), w one of many
weight sets chosen per decision by a small context, trained online on the coded bit
(w += lr * err * x). Integer: weights in 1/65536, inputs and output in 1/256 stretched units."""

import numba
import numpy as np

from trainer.engine.logistic import squash


@numba.njit(cache=True, nogil=True)
def new(sets, n_inputs):
    weights = np.zeros((sets, n_inputs), dtype=np.int64)
    weights[:, 0] = 65536  # the first input (the logistic) leads at the start
    return weights


@numba.njit(cache=True, nogil=True, inline="always")
def dot(weights, ws, x):
    """w . x of set ws, in 1/65536 of the stretched unit."""
    total = 0
    for i in range(x.shape[0]):
        total += weights[ws, i] * x[i]
    return total


@numba.njit(cache=True, nogil=True, inline="always")
def update(weights, ws, x, total, bit, lr, points):
    """Learn from the bit, `total` this set's dot."""
    err = ((bit << 12) - squash(max(-2047, min(2047, total >> 16)), points)) * lr
    for i in range(x.shape[0]):
        weights[ws, i] += (x[i] * err) >> 14

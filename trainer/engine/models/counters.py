"""Adaptive binary context models: per context model a table of counters, each one uint32 (its
probability of a 1 in the high 22 bits, its update count in the low 10), stepping 1/(n+2) toward
each coded bit, down to 1/(limit+2). A context model's index is its context times NODES plus the
decision kind (trainer.engine.mixing)."""

import numba
import numpy as np

CTX_BITS = 17  # log2 of the counters per context model (the hashed ones: contexts.MORE_BITS)


def make_rates() -> np.ndarray:
    """65536 / (n + 2): a counter's step after n updates."""
    return np.array([65536 // (n + 2) for n in range(1024)], dtype=np.int64)


RATES = make_rates()


@numba.njit(cache=True, nogil=True)
def new(n_models, size):
    return np.full((n_models, size), 1 << 31, dtype=np.uint32)  # p = 1/2, n = 0


@numba.njit(cache=True, nogil=True, inline="always")
def p12(counters, i, j):
    """Counter j of model i: its probability of a 1 in 1/4096."""
    return np.int64(counters[i, j]) >> 20


@numba.njit(cache=True, nogil=True, inline="always")
def update(counters, i, j, bit, limit, rates):
    state = np.int64(counters[i, j])
    n, q = state & 1023, state >> 10
    q += (((bit << 22) - q) * rates[n]) >> 16
    counters[i, j] = (q << 10) | (n + 1 if n < limit else n)

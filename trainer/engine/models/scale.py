"""The scale of the discretized logistic around the prediction: the running mean |residual| of a
context (channel, error energy, brightness, with `parity` the pixel-position parity), averaged on
the log-spaced table rows with a second context's (local gradient x where N, W, NW, NE lie against
the prediction; `scale_mix` quarters), then moved by the best of NJ neighbouring rows by their
running code lengths (the scale search)."""

from collections import namedtuple

import numba
import numpy as np

from trainer.engine.tables import cum

NJ = 5  # candidate rows of the scale search

State = namedtuple("State", "mean_abs mean_abs2 search")


@numba.njit(cache=True, nogil=True)
def new(channels, edges, n_light, n_parity, init):
    nb = edges.shape[0] + 1
    mean_abs = np.zeros((channels, nb, n_light, n_parity), dtype=np.int64)
    mean_abs2 = np.zeros((channels, nb, 16), dtype=np.int64)
    for b in range(nb):
        start = ((edges[b - 1] if b > 0 else 0) * init) >> 4
        mean_abs[:, b, :, :] = start
        mean_abs2[:, b, :] = start
    return State(mean_abs, mean_abs2, np.zeros((channels, nb, n_parity, NJ), dtype=np.int64))


@numba.njit(cache=True, nogil=True)
def row(s, c, bucket, light, pp, gradient, texture, scale_of, mix):
    """The table row of the contexts' scale, before the search."""
    m = min(s.mean_abs[c, bucket, light, pp] >> 4, scale_of.shape[0] - 1)
    r = scale_of[m]
    if mix:
        m2 = min(s.mean_abs2[c, gradient, texture] >> 4, scale_of.shape[0] - 1)
        r = (r * (4 - mix) + scale_of[m2] * mix + 2) >> 2
    return r


@numba.njit(cache=True, nogil=True)
def pick(s, c, bucket, pp, r, step, n_rows):
    """The row the search moves `r` to: the candidate with the smallest running code length."""
    costs = s.search[c, bucket, pp]
    best = NJ >> 1
    for j in range(NJ):
        if costs[j] < costs[best]:
            best = j
    return max(0, min(n_rows - 1, r + (best - (NJ >> 1)) * step))


@numba.njit(cache=True, nogil=True)
def update(s, c, bucket, light, pp, gradient, texture, r, v, a, mu, cdf, offset, code_length, p):
    """Learn from value v (|error| a, in 1/16 pixel): the contexts' means, the candidates' costs."""
    s.mean_abs[c, bucket, light, pp] += ((a << 4) - s.mean_abs[c, bucket, light, pp]) >> p.scale_adapt_shift
    if p.scale_mix:
        s.mean_abs2[c, gradient, texture] += ((a << 4) - s.mean_abs2[c, gradient, texture]) >> p.scale_adapt_shift
    costs = s.search[c, bucket, pp]
    n_rows = cdf.shape[0]
    for j in range(NJ):
        cand = cdf[max(0, min(n_rows - 1, r + (j - (NJ >> 1)) * p.scale_step))]
        f = cum(cand, offset, mu, v + 1) - cum(cand, offset, mu, v)
        costs[j] += code_length[f] - (costs[j] >> p.scale_search_shift)

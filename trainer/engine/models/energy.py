"""The error energy around a pixel: the final |errors| near it (N, W, NW, NE; NN, WW, NEE weighted
by `energy_far`), its previous channel's (`energy_channel`) and the best sub-predictor's local error
(`energy_best`), as one of the bundle's log-spaced buckets: the context most models select by."""

import numba


@numba.njit(cache=True, nogil=True)
def bucket_of(e, edges):
    lo, hi = 0, edges.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if e >= edges[mid]:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def bucket(fin, r0, r1, r2, X, c, best, p, edges):
    energy = fin[r1, X, c] + fin[r0, X - 1, c] + fin[r1, X - 1, c] + fin[r1, X + 1, c]
    if c >= 1:
        energy += fin[r0, X, c - 1] * p.energy_channel
    energy += (best * p.energy_best) >> 4
    energy += ((fin[r2, X, c] + fin[r0, X - 2, c] + fin[r1, X + 2, c]) * p.energy_far) >> 4
    return bucket_of(energy, edges)

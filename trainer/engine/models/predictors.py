"""The sub-predictors and their weighted blend (as JPEG-XL's self-correcting weighted predictor:
the predictor that did well around the pixel leads).

16 classical predictions of the value in 1/16 pixel: N, W, the plane W + N - NW, gradient
extensions, NE, and for the second and third channels the same neighbourhood shifted by the
already-coded channels' local differences, and those channels plus their mean difference to this
one around the pixel. Their blend is weighted by 1/(e + 8)^2, e each predictor's |error| summed at
N, W, NW, NE (and with `blend_far` WW, NN)."""

import numba
import numpy as np

from trainer.engine.tables import SH

K = 16


@numba.njit(cache=True, nogil=True)
def predict(V, r0, r1, r2, X, c, preds):
    """Fill `preds` (K,) with the sub-predictions of channel c at column X of row r0."""
    n, w, nw, ne = V[r1, X, c], V[r0, X - 1, c], V[r1, X - 1, c], V[r1, X + 1, c]
    nn, ww, nne = V[r2, X, c], V[r0, X - 2, c], V[r2, X + 1, c]
    plane = w + n - nw
    preds[0] = n << SH
    preds[1] = w << SH
    preds[2] = plane << SH
    preds[3] = (n + ne - nne) << SH
    preds[4] = (w + ne - n) << SH
    preds[5] = (w + ne) << (SH - 1)
    preds[6] = ne << SH
    preds[7] = (2 * n - nn) << SH
    preds[8] = (2 * w - ww) << SH
    if c >= 1:  # the previous channel's local differences carried over
        q = c - 1
        xq = V[r0, X, q]
        preds[9] = (w + xq - V[r0, X - 1, q]) << SH
        preds[10] = (n + xq - V[r1, X, q]) << SH
        preds[11] = (plane + xq - (V[r0, X - 1, q] + V[r1, X, q] - V[r1, X - 1, q])) << SH
        preds[12] = (ne + xq - V[r1, X + 1, q]) << SH
        # the previous channel plus the mean difference of the two around the pixel
        preds[14] = (xq << SH) + (((w - V[r0, X - 1, q]) + (n - V[r1, X, q]) + (nw - V[r1, X - 1, q])
                                   + (ne - V[r1, X + 1, q])) << (SH - 2))
    else:
        for k in range(9, 13):
            preds[k] = preds[2]
        preds[14] = preds[2]
    if c >= 2:  # and the first channel's
        x0 = V[r0, X, 0]
        preds[13] = (plane + x0 - (V[r0, X - 1, 0] + V[r1, X, 0] - V[r1, X - 1, 0])) << SH
        preds[15] = (x0 << SH) + (((w - V[r0, X - 1, 0]) + (n - V[r1, X, 0]) + (nw - V[r1, X - 1, 0])
                                   + (ne - V[r1, X + 1, 0])) << (SH - 2))
    else:
        preds[13] = preds[11] if c == 1 else preds[2]
        preds[15] = preds[14]


@numba.njit(cache=True, nogil=True)
def blend(err, r0, r1, r2, X, c, far, preds):
    """(the blend of `preds`, the smallest summed |error| of any sub-predictor)."""
    total, acc, best = 0, 0, np.int64(1) << 40
    for k in range(K):
        e = err[r1, X, c, k] + err[r0, X - 1, c, k] + err[r1, X - 1, c, k] + err[r1, X + 1, c, k]
        if far:
            e += err[r0, X - 2, c, k] + err[r2, X, c, k]
        best = min(best, e)
        weight = (np.int64(1) << 40) // ((e + 8) * (e + 8))
        total += weight
        acc += weight * preds[k]
    return (acc + (total >> 1)) // total, best


@numba.njit(cache=True, nogil=True, inline="always")
def update(err, r0, X, c, v16, preds):
    for k in range(K):
        err[r0, X, c, k] = abs(v16 - preds[k])

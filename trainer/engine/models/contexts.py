"""The contexts of the mixing stage's counters (trainer.engine.models.counters), one per context
model, and the small contexts that choose the mixers' weight sets and the APM's map.

Each context is an index times NODES (a counter per decision kind). What they see that the
logistic does not: the residuals of the pixel's earlier channels and of its neighbours, where the
neighbours and the earlier channels' differences lie against the prediction, the texture, the
pixel-position parity."""

import numba

from trainer.engine.models.energy import bucket_of
from trainer.engine.tables import SH

N_CONTEXTS = 9  # context models of the engine's first mixing stage (engine 0.4 streams)
NODES = 16  # decision kinds: zero, sign, 7 magnitude classes, the first halving of 7 classes
APM_CONTEXTS = 32  # APM contexts per channel and node (the error energy bucket)
MIXER_SETS = 4  # the first mixer's weight sets per channel and node, chosen by the error energy
MIXER_SETS2 = 9  # the second mixer's, chosen by the prediction against the previous channel


@numba.njit(cache=True, nogil=True, inline="always")
def level(r):
    """A signed residual (1/16 pixel) in 11 classes, 0..10 (5: under half a pixel)."""
    a = abs(r)
    q = 0 if a < 8 else 1 if a < 24 else 2 if a < 56 else 3 if a < 120 else 4 if a < 248 else 5
    return 5 + q if r >= 0 else 5 - q


@numba.njit(cache=True, nogil=True, inline="always")
def near(d):
    """A small signed pixel difference in 9 classes, 0..8 (4: equal)."""
    a = abs(d)
    q = 0 if a == 0 else 1 if a == 1 else 2 if a < 4 else 3 if a < 8 else 4
    return 4 + q if d >= 0 else 4 - q


@numba.njit(cache=True, nogil=True)
def shape(V, r0, r1, X, c, mu, edges):
    """(the local gradient's energy bucket, which of N, W, NW, NE lie above the prediction)."""
    n, w, nw, ne = V[r1, X, c], V[r0, X - 1, c], V[r1, X - 1, c], V[r1, X + 1, c]
    gradient = bucket_of((abs(n - nw) + abs(w - nw) + abs(ne - n)) << (SH + 1), edges)
    texture = ((n << SH) > mu) + 2 * ((w << SH) > mu) + 4 * ((nw << SH) > mu) + 8 * ((ne << SH) > mu)
    return gradient, texture


@numba.njit(cache=True, nogil=True)
def keeps(V, r0, r1, r2, X, c, P):
    """Does the prediction keep the previous channel's differences to W and N? (The first channel
    has none: NN and WW against the prediction instead.)"""
    if c >= 1:
        xq = V[r0, X, c - 1]
        return near(P - xq - V[r0, X - 1, c] + V[r0, X - 1, c - 1]), near(P - xq - V[r1, X, c] + V[r1, X, c - 1])
    return near(V[r2, X, c] - P), near(V[r0, X - 2, c] - P)


@numba.njit(cache=True, nogil=True)
def fill(cx, V, res, residual, r0, r1, r2, X, c, bucket, nb, gradient, texture, keep_w, keep_n, P, mu, mu2,
         inter, par):
    """The first N_CONTEXTS contexts; `mu2` the second prediction, `inter` the inter-channel one."""
    S = NODES
    n, w, nw, ne = V[r1, X, c], V[r0, X - 1, c], V[r1, X - 1, c], V[r1, X + 1, c]
    last = V.shape[2] - 1
    cx[0] = (c * nb + bucket) * S
    if c >= 1:  # the residuals of this pixel's earlier channels
        cx[1] = ((c * 11 + level(residual[c - 1])) * 11 + (level(residual[c - 2]) if c >= 2 else 5)) * S
    else:  # the last channel's at W and N
        cx[1] = (level(res[r0, X - 1, last]) * 11 + level(res[r1, X, last])) * S
    cx[2] = ((c * 11 + level(res[r1, X, c])) * 11 + level(res[r0, X - 1, c])) * S
    cx[3] = ((c * 16 + texture) * 8 + min(gradient >> 2, 7)) * S
    cx[4] = (((c * 9 + near(n - P)) * 9 + near(w - P)) * 5 + (near(ne - P) + 1) // 2) * S
    cx[5] = ((c * 9 + keep_w) * 9 + keep_n) * S
    if c >= 2:  # the first channel's differences to W and N, and the parity
        x0 = V[r0, X, 0]
        cx[6] = (((c * 9 + near(P - x0 - w + V[r0, X - 1, 0])) * 9 + near(P - x0 - n + V[r1, X, 0])) * 4 + par) * S
    elif c == 1:  # the first channel's to NW and NE, and the parity
        xq = V[r0, X, 0]
        cx[6] = (((c * 9 + near(P - xq - nw + V[r1, X - 1, 0])) * 9 + near(P - xq - ne + V[r1, X + 1, 0])) * 4 + par) * S
    else:
        cx[6] = par * S
    cx[7] = (((c * 11 + (level(residual[c - 1]) if c >= 1 else level(res[r1, X + 1, c]))) * 11
              + level(res[r0, X - 1, c])) * 9 + (keep_n if c >= 1 else 4)) * S
    # how far the second prediction lies from the first, and the inter-channel predictor
    cx[8] = ((c * 9 + near((mu - mu2 + 8) >> SH)) * 9 + near((inter >> SH) - P)) * S


@numba.njit(cache=True, nogil=True)
def select(sel, c, channels, bucket, nb, keep_w, n_minus_p, pixels, lr):
    """The mixers' weight sets, the APM's context, the learning rate (faster while a stripe is young)."""
    S = NODES
    sel[0] = (c * MIXER_SETS + (bucket * MIXER_SETS) // nb) * S
    sel[1] = (channels * MIXER_SETS + c * MIXER_SETS2 + (keep_w if c >= 1 else near(n_minus_p))) * S
    sel[2] = (c * APM_CONTEXTS + min(bucket, APM_CONTEXTS - 1)) * S
    sel[4] = lr + (lr * 3 * 16384) // (16384 + pixels)


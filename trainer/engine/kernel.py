"""The online engine's per-subpixel model and coder loop, compiled (numba).

One function codes and decodes (`decode` selects which), so both sides run the very same model
code on the very same values: the encoder reads each subpixel from the image, the decoder from the
range decoder, and everything after that is shared.

Per subpixel (raster order, channels in order; every channel of a pixel sees the ones before it):
1. Sub-predictions: 16 classical predictors of the value in 1/16 pixel (N, W, the plane
   W + N - NW, gradient extensions, NE, and for the second and third channels the same
   neighbourhood shifted by the already-coded channels' local differences, and those channels
   plus their mean difference to this one around the pixel).
2. A blend weighted by each predictor's recent error around the pixel (N, W, NW, NE, and WW, NN),
   as in JPEG-XL's self-correcting weighted predictor: the predictor that did well here leads.
3. A learned correction on top: normalized LMS (integer) or, in the `max` preset, recursive least
   squares (float64) over the sub-predictions' deviations from the blend and the previous
   channels' residuals at this pixel (with `ols_wide`, also 5 farther neighbours and 3 more
   inter-channel predictions), one weight set per channel and error-energy class (the LMS also
   per pixel-position parity, with `parity`). Under the mixing stage the LMS runs beside the
   least squares, its prediction the centre of the stage's second logistic.
4. A discretized logistic around the prediction. Its scale: the context's running mean |residual|
   (context: channel, local error energy, brightness, and with `parity` whether x and y are odd:
   chroma-subsampled sources repeat every 2 pixels), averaged with a second context's (local
   gradient, where the neighbours lie against the prediction), then moved by the best of five
   neighbouring scales by their running code lengths. The 16-bit CDF comes from the bundle's tables.
5. Range coding of the value (trainer.engine.rangecoder): directly under the logistic, or, with
   `mix`, as binary decisions whose probabilities mix the logistic with adaptive context models
   (trainer.engine.mixing; the contexts are set up here: the residuals of the pixel's earlier
   channels and of its neighbours, where the neighbours and the earlier channels' differences lie
   against the prediction, pixel-position parity).

Exactness: everything but the least-squares stage is integer arithmetic. The least squares run in
float64 with every operation in a fixed order, compiled without fast-math (no reassociation, no
fused multiply-add contraction), so IEEE-754 fixes each result; the tests decode golden streams
with the kernels compiled for the generic x86-64, AVX2 and AVX-512 targets.
"""

import numba
import numpy as np

from trainer.engine import mixing, rangecoder as rc
from trainer.engine.mixing import RATES, SQUASH_POINTS, STRETCH
from trainer.engine.tables import SH, cum, find

ONE = 1 << SH
PAD = 2  # columns on each side of a row
K = 16  # sub-predictors
NU = K + 2  # inputs of the learned correction (the LMS)
NUR = NU + 8  # with `ols_wide`, the least squares' inputs: those, 5 farther neighbours, 3 more inter-channel predictions
NJ = 5  # candidate scales of the scale search
FREQ_TOTAL = 1 << rc.TOTAL_BITS
# indices into the settings array (trainer.engine.settings.EngineSettings field order)
(LMS_SHIFT, WEIGHT_SETS, OLS, OLS_INTERVAL, OLS_DECAY, OLS_RIDGE, ENERGY_CHANNEL, ENERGY_BEST, ENERGY_FAR,
 SCALE_ADAPT, SCALE_INIT, INTENSITY_BITS, SCALE_STEP, SCALE_SEARCH, STRIPE_ROWS, BLEND_FAR, PARITY,
 SCALE_MIX, FALLBACK_WEBP, FALLBACK_JXL, MIX, MIX_LR, MIX_LIMIT, OLS_WIDE, CHANNEL_ORDER, FALLBACK_BEST) = range(26)


@numba.njit(cache=True, nogil=True)
def _bucket(e, edges):
    lo, hi = 0, edges.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if e >= edges[mid]:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True, inline="always")
def _level(r):
    """A signed residual (1/16 pixel) in 11 classes, 0..10 (5: under half a pixel)."""
    a = abs(r)
    q = 0 if a < 8 else 1 if a < 24 else 2 if a < 56 else 3 if a < 120 else 4 if a < 248 else 5
    return 5 + q if r >= 0 else 5 - q


@numba.njit(cache=True, nogil=True, inline="always")
def _near(d):
    """A small signed pixel difference in 9 classes, 0..8 (4: equal)."""
    a = abs(d)
    q = 0 if a == 0 else 1 if a == 1 else 2 if a < 4 else 3 if a < 8 else 4
    return 4 + q if d >= 0 else 4 - q


@numba.njit(cache=True, nogil=True)
def _solve(R, r, w, L, z, n, ridge):
    """w = (R + ridge I)^-1 r by Cholesky, operations in a fixed order; w is kept if R is not
    positive definite."""
    for i in range(n):
        for j in range(i + 1):
            s = R[i, j] + (ridge if i == j else 0.0)
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                if s <= 0.0:
                    return
                L[i, i] = np.sqrt(s)
            else:
                L[i, j] = s / L[j, j]
    for i in range(n):
        s = r[i]
        for k in range(i):
            s -= L[i, k] * z[k]
        z[i] = s / L[i, i]
    for i in range(n - 1, -1, -1):
        s = z[i]
        for k in range(i + 1, n):
            s -= L[k, i] * w[k]
        w[i] = s / L[i, i]


@numba.njit(cache=True, nogil=True)
def code_stripe(image, y0, y1, decode, enc, out, dec, data, cdf, scale_of, edges, code_length, p, lengths):
    """Code rows y0..y1-1 of `image` (H, W, C uint8) as an independent stripe (fresh state), or
    decode them into it. `p[OLS]` and `p[PARITY]` are 0 or 1 here (the coder resolves "auto"). Returns the ideal code length in 1/256 bit. `lengths` (H, W, C) float32,
    or any array of size 1, receives each subpixel's code length in bits."""
    width, channels = image.shape[1], image.shape[2]
    n_scales = cdf.shape[0]
    offset = cdf.shape[1] >> 1
    nb = edges.shape[0] + 1
    ns = p[WEIGHT_SETS]
    use_ols = p[OLS] > 0
    keep_lengths = lengths.size > 1
    cols = width + 2 * PAD
    # the last three rows of values, of every predictor's |error| and of the final |error|
    V = np.full((3, cols, channels), 128, dtype=np.int64)
    err = np.zeros((3, cols, channels, K), dtype=np.int64)
    fin = np.zeros((3, cols, channels), dtype=np.int64)
    res = np.zeros((3, cols, channels), dtype=np.int64)  # the signed final errors, for the mixing stage
    # contexts: running mean |residual| (x16) per channel, energy bucket, brightness and parity
    n_light = 1 << p[INTENSITY_BITS]
    NP = 4 if p[PARITY] > 0 else 1
    mean_abs = np.zeros((channels, nb, n_light, NP), dtype=np.int64)
    for b in range(nb):
        mean_abs[:, b, :, :] = ((edges[b - 1] if b > 0 else 0) * p[SCALE_INIT]) >> 4
    search = np.zeros((channels, nb, NP, NJ), dtype=np.int64)
    # a second scale context: local gradient x where N, W, NW, NE lie against the prediction
    mean_abs2 = np.zeros((channels, nb, 16), dtype=np.int64)
    for b in range(nb):
        mean_abs2[:, b, :] = ((edges[b - 1] if b > 0 else 0) * p[SCALE_INIT]) >> 4
    preds = np.zeros(K, dtype=np.int64)
    u = np.zeros(NUR, dtype=np.int64)
    residual = np.zeros(channels, dtype=np.int64)  # this pixel's residuals of the channels coded
    lms = np.zeros((channels * ns * NP, NU), dtype=np.int64)
    ols_R = np.zeros((channels * ns * NP, NUR, NUR))
    ols_r = np.zeros((channels * ns * NP, NUR))
    ols_w = np.zeros((channels * ns * NP, NUR))
    ols_L = np.zeros((NUR, NUR))
    ols_z = np.zeros(NUR)
    ols_x = np.zeros(NUR)
    decay = 1.0 - 1.0 / (1 << p[OLS_DECAY])
    nur = NUR if p[OLS_WIDE] else NU
    ridge = p[OLS_RIDGE] * 0.01
    pixels = 0
    ideal = 0
    use_mix = p[MIX] > 0
    counters, weights, apm, x_in = mixing.new_state(channels)
    cx = np.zeros(mixing.NCTX, dtype=np.int64)
    sel = np.array([0, 0, 0, p[MIX_LIMIT], p[MIX_LR]], dtype=np.int64)
    for y in range(y0, y1):
        r0, r1, r2 = (y - y0) % 3, (y - y0 + 2) % 3, (y - y0 + 1) % 3  # rows y, y-1, y-2
        for c in range(channels):  # left border: the first pixel of the row above
            V[r0, 0, c] = V[r1, PAD, c]
            V[r0, 1, c] = V[r1, PAD, c]
            for i in range(PAD):
                fin[r0, i, c] = 0
                res[r0, i, c] = 0
                for k in range(K):
                    err[r0, i, c, k] = 0
        for x in range(width):
            X = x + PAD
            par = (x & 1) | ((y & 1) << 1)
            for c in range(channels):
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
                # blend, weighted by each predictor's errors at N, W, NW, NE
                total, acc, best = 0, 0, np.int64(1) << 40
                for k in range(K):
                    e = err[r1, X, c, k] + err[r0, X - 1, c, k] + err[r1, X - 1, c, k] + err[r1, X + 1, c, k]
                    if p[BLEND_FAR]:
                        e += err[r0, X - 2, c, k] + err[r2, X, c, k]
                    best = min(best, e)
                    weight = (np.int64(1) << 40) // ((e + 8) * (e + 8))
                    total += weight
                    acc += weight * preds[k]
                blend = (acc + (total >> 1)) // total
                # error energy around the pixel: final errors near it, its own previous channel's
                energy = fin[r1, X, c] + fin[r0, X - 1, c] + fin[r1, X - 1, c] + fin[r1, X + 1, c]
                if c >= 1:
                    energy += fin[r0, X, c - 1] * p[ENERGY_CHANNEL]
                energy += (best * p[ENERGY_BEST]) >> 4
                energy += ((fin[r2, X, c] + fin[r0, X - 2, c] + fin[r1, X + 2, c]) * p[ENERGY_FAR]) >> 4
                bucket = _bucket(energy, edges)
                # learned correction of the blend
                wset = (c * ns + (bucket * ns) // nb) * NP + (par if NP > 1 and not use_ols else 0)
                for k in range(K):
                    u[k] = preds[k] - blend
                u[K] = residual[c - 1] if c >= 1 else 0
                u[K + 1] = residual[c - 2] if c >= 2 else 0
                if use_ols and nur > NU:
                    u[NU] = (V[r1, X - 2, c] << SH) - blend
                    u[NU + 1] = (V[r2, X - 1, c] << SH) - blend
                    u[NU + 2] = (V[r1, X + 2, c] << SH) - blend
                    u[NU + 3] = (V[r2, X + 2, c] << SH) - blend
                    u[NU + 4] = (V[r2, X - 2, c] << SH) - blend
                    if c >= 1:  # the previous channel's differences at NW, NN, WW carried over
                        q = c - 1
                        xq = V[r0, X, q]
                        u[NU + 5] = ((nw + xq - V[r1, X - 1, q]) << SH) - blend
                        u[NU + 6] = ((nn + xq - V[r2, X, q]) << SH) - blend
                        u[NU + 7] = ((ww + xq - V[r0, X - 2, q]) << SH) - blend
                    else:
                        u[NU + 5] = u[NU + 6] = u[NU + 7] = 0
                base = blend
                norm = 0
                # the LMS runs beside the least squares under the mixing stage: its prediction is the
                # second logistic's centre there (else the blend's)
                both = use_ols and use_mix
                wset_l = (c * ns + (bucket * ns) // nb) * NP + (par if NP > 1 else 0) if both else wset
                second = base
                if not use_ols or both:
                    dot = 0
                    for k in range(NU):
                        norm += u[k] * u[k]
                        dot += lms[wset_l, k] * u[k]
                    blend = base + (dot >> 14)
                    second = blend
                if use_ols:
                    dot = 0.0
                    for k in range(nur):
                        ols_x[k] = u[k] * 0.0625
                        dot += ols_w[wset, k] * ols_x[k]
                    blend = base + np.int64(np.floor(dot * 16.0 + 0.5))
                mu = max(0, min(255 << SH, blend))
                # the scale: the context's mean |residual|, shifted by the best candidate so far
                light = mu >> (SH + 8 - p[INTENSITY_BITS])
                pp = par if NP > 1 else 0
                m = min(mean_abs[c, bucket, light, pp] >> 4, scale_of.shape[0] - 1)
                row = scale_of[m]
                if p[SCALE_MIX]:  # both contexts' scales, averaged on the log-spaced rows
                    gradient = _bucket((abs(n - nw) + abs(w - nw) + abs(ne - n)) << (SH + 1), edges)
                    texture = ((n << SH) > mu) + 2 * ((w << SH) > mu) + 4 * ((nw << SH) > mu) + 8 * ((ne << SH) > mu)
                    m2 = min(mean_abs2[c, gradient, texture] >> 4, scale_of.shape[0] - 1)
                    row = (row * (4 - p[SCALE_MIX]) + scale_of[m2] * p[SCALE_MIX] + 2) >> 2
                costs = search[c, bucket, pp]
                pick = NJ >> 1
                for j in range(NJ):
                    if costs[j] < costs[pick]:
                        pick = j
                table = cdf[max(0, min(n_scales - 1, row + (pick - (NJ >> 1)) * p[SCALE_STEP]))]
                # the value
                if use_mix:  # the mixing stage's contexts (each times NODES: a counter per decision kind)
                    if not p[SCALE_MIX]:
                        gradient = _bucket((abs(n - nw) + abs(w - nw) + abs(ne - n)) << (SH + 1), edges)
                        texture = ((n << SH) > mu) + 2 * ((w << SH) > mu) + 4 * ((nw << SH) > mu) + 8 * ((ne << SH) > mu)
                    S = mixing.NODES
                    P = min(255, (mu + (ONE >> 1)) >> SH)
                    # does the prediction keep the previous channel's differences to W and N?
                    if c >= 1:
                        xq = V[r0, X, c - 1]
                        keep_w, keep_n = _near(P - xq - w + V[r0, X - 1, c - 1]), _near(P - xq - n + V[r1, X, c - 1])
                    else:  # the first channel has none: NN and WW against the prediction instead
                        keep_w, keep_n = _near(nn - P), _near(ww - P)
                    cx[0] = (c * nb + bucket) * S
                    if c >= 1:  # the residuals of this pixel's earlier channels
                        cx[1] = ((c * 11 + _level(residual[c - 1])) * 11 + (_level(residual[c - 2]) if c >= 2 else 5)) * S
                    else:  # the last channel's at W and N
                        cx[1] = (_level(res[r0, X - 1, channels - 1]) * 11 + _level(res[r1, X, channels - 1])) * S
                    cx[2] = ((c * 11 + _level(res[r1, X, c])) * 11 + _level(res[r0, X - 1, c])) * S
                    cx[3] = ((c * 16 + texture) * 8 + min(gradient >> 2, 7)) * S
                    cx[4] = (((c * 9 + _near(n - P)) * 9 + _near(w - P)) * 5 + (_near(ne - P) + 1) // 2) * S
                    cx[5] = ((c * 9 + keep_w) * 9 + keep_n) * S
                    if c >= 2:  # the first channel's differences to W and N, and the parity
                        x0 = V[r0, X, 0]
                        cx[6] = (((c * 9 + _near(P - x0 - w + V[r0, X - 1, 0])) * 9 + _near(P - x0 - n + V[r1, X, 0])) * 4
                                 + par) * S
                    elif c == 1:  # the first channel's to NW and NE, and the parity
                        cx[6] = (((c * 9 + _near(P - xq - nw + V[r1, X - 1, 0])) * 9 + _near(P - xq - ne + V[r1, X + 1, 0]))
                                 * 4 + par) * S
                    else:
                        cx[6] = par * S
                    cx[7] = (((c * 11 + (_level(residual[c - 1]) if c >= 1 else _level(res[r1, X + 1, c]))) * 11
                              + _level(res[r0, X - 1, c])) * 9 + (keep_n if c >= 1 else 4)) * S
                    # how far the second prediction lies from the first, and the inter-channel predictor
                    cx[8] = ((c * 9 + _near((mu - max(0, min(255 << SH, second if both else base)) + 8) >> SH)) * 9
                             + _near((preds[14 if c >= 1 else 2] >> SH) - P)) * S
                    # the mixers' weight sets, the APM's context, the learning rate (faster while young)
                    sel[0] = (c * mixing.MIXER_SETS + (bucket * mixing.MIXER_SETS) // nb) * S
                    sel[1] = (channels * mixing.MIXER_SETS + c * mixing.MIXER_SETS2 + (keep_w if c >= 1 else _near(n - P))) * S
                    sel[2] = (c * mixing.APM_CONTEXTS + min(bucket, mixing.APM_CONTEXTS - 1)) * S
                    sel[4] = p[MIX_LR] + (p[MIX_LR] * 3 * 16384) // (16384 + pixels)
                    v, bits = mixing.code_value(np.int64(0 if decode else image[y, x, c]), P, table, offset, mu,
                                                max(0, min(255 << SH, second if both else base)), cx, sel, counters, weights, apm, x_in,
                                                STRETCH, SQUASH_POINTS, RATES, code_length, decode, enc, out, dec, data)
                    if decode:
                        image[y, x, c] = v
                elif decode:
                    v = np.int64(find(table, offset, mu, 0, 256, rc.target(dec)))
                    low = cum(table, offset, mu, v)
                    freq = cum(table, offset, mu, v + 1) - low
                    rc.consume(dec, data, low, freq)
                    image[y, x, c] = v
                    bits = code_length[freq]
                else:
                    v = np.int64(image[y, x, c])
                    low = cum(table, offset, mu, v)
                    freq = cum(table, offset, mu, v + 1) - low
                    rc.encode(enc, out, low, freq)
                    bits = code_length[freq]
                ideal += bits
                if keep_lengths:
                    lengths[y, x, c] = bits / 256.0
                V[r0, X, c] = v
                # learn from the value
                v16 = v << SH
                for k in range(K):
                    err[r0, X, c, k] = abs(v16 - preds[k])
                a = abs(v16 - mu)
                fin[r0, X, c] = a
                res[r0, X, c] = v16 - mu
                residual[c] = v16 - mu
                mean_abs[c, bucket, light, pp] += ((a << 4) - mean_abs[c, bucket, light, pp]) >> p[SCALE_ADAPT]
                if p[SCALE_MIX]:
                    mean_abs2[c, gradient, texture] += ((a << 4) - mean_abs2[c, gradient, texture]) >> p[SCALE_ADAPT]
                for j in range(NJ):
                    cand = cdf[max(0, min(n_scales - 1, row + (j - (NJ >> 1)) * p[SCALE_STEP]))]
                    f = cum(cand, offset, mu, v + 1) - cum(cand, offset, mu, v)
                    costs[j] += code_length[f] - (costs[j] >> p[SCALE_SEARCH])
                if use_ols:
                    target = (v16 - base) * 0.0625
                    for i in range(nur):
                        xi = ols_x[i]
                        ols_r[wset, i] = ols_r[wset, i] * decay + xi * target
                        for j in range(i + 1):
                            ols_R[wset, i, j] = ols_R[wset, i, j] * decay + xi * ols_x[j]
                    if pixels % p[OLS_INTERVAL] == 0:
                        _solve(ols_R[wset], ols_r[wset], ols_w[wset], ols_L, ols_z, nur, ridge)
                if not use_ols or both:
                    den = (norm + 256) << p[LMS_SHIFT]
                    e = v16 - second
                    for k in range(NU):
                        step = (e * u[k]) << 14
                        lms[wset_l, k] += step // den if step >= 0 else -((-step) // den)
            pixels += 1
        for c in range(channels):  # right border: the row's last pixel
            for i in range(PAD):
                V[r0, width + PAD + i, c] = V[r0, width + PAD - 1, c]
                fin[r0, width + PAD + i, c] = 0
                res[r0, width + PAD + i, c] = 0
                for k in range(K):
                    err[r0, width + PAD + i, c, k] = 0
    return ideal

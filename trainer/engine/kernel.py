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
   per pixel-position parity, with `parity`; the least squares too with `ols_parity`). Under the mixing stage the LMS runs beside the
   least squares, its prediction the centre of the stage's second logistic.
4. A discretized logistic around the prediction. Its scale: the context's running mean |residual|
   (context: channel, local error energy, brightness, and with `parity` whether x and y are odd:
   chroma-subsampled sources repeat every 2 pixels), averaged with a second context's (local
   gradient, where the neighbours lie against the prediction), then moved by the best of five
   neighbouring scales by their running code lengths. The 16-bit CDF comes from the bundle's tables.
5. Range coding of the value (trainer.engine.rangecoder): directly under the logistic, or, with
   `mix`, as binary decisions whose probabilities mix the logistic with adaptive context models
   (trainer.engine.mixing; their contexts: trainer.engine.models.contexts).

Each model is a module of trainer.engine.models with its state as a namedtuple of arrays
(`rows`, `predictors`, `energy`, `corrections` + `lms` + `least_squares`, `scale`, `contexts`,
`counters`, `mixer`, `apm`, and with `network` a trained `network`); `code_subpixel` below wires them in the order above. Settings
arrive by name (trainer.engine.settings.Params).

Exactness: everything but the least-squares stage is integer arithmetic. The least squares run in
float64 with every operation in a fixed order, compiled without fast-math (no reassociation, no
fused multiply-add contraction), so IEEE-754 fixes each result; the tests decode golden streams
with the kernels compiled for the generic x86-64, AVX2 and AVX-512 targets.
"""

from collections import namedtuple

import numba
import numpy as np

from trainer.engine import mixing, rangecoder as rc
from trainer.engine.logistic import STRETCH
from trainer.engine.models import contexts, corrections, energy, least_squares, lms, network, predictors, rows, scale, seen
from trainer.engine.models.corrections import NU, NUR
from trainer.engine.models.counters import CTX_BITS, RATES
from trainer.engine.models.predictors import K
from trainer.engine.models.rows import PAD
from trainer.engine.tables import SH, cum, find

ONE = 1 << SH

Tables = namedtuple("Tables", "cdf scale_of edges code_length net")  # the bundle's tables (trainer.engine.tables), its network
Stream = namedtuple("Stream", "decode enc out dec data")  # the range coder's state: the encoder's or the decoder's
# one stripe's models: the neighbourhood, the LMS, the least squares, the scale, the mixing stage
Models = namedtuple("Models", "rows lms ols scale mix")
# per-pixel scratch: sub-predictions, correction inputs, this pixel's residuals, counter contexts, selectors,
# the network's inputs
Scratch = namedtuple("Scratch", "preds u residual cx sel f")


@numba.njit(cache=True, nogil=True)
def new_models(width, channels, t, p):
    n_parity = 4 if p.parity > 0 else 1
    sets = channels * p.weight_sets * n_parity
    return Models(rows.new(width, channels, K), lms.new(sets, NU), least_squares.new(sets, NUR + 1),
                  scale.new(channels, t.edges, 1 << p.intensity_bits, n_parity, p.scale_init),
                  mixing.new_state(channels, contexts.N_CONTEXTS, CTX_BITS, p.seen))


@numba.njit(cache=True, nogil=True)
def code_stripe(image, y0, y1, t, io, p, lengths):
    """Code rows y0..y1-1 of `image` (H, W, C uint8) as an independent stripe (fresh state), or
    decode them into it (`io.decode`). `p` (trainer.engine.settings.Params): `ols` and `parity`
    are 0 or 1 here (the coder resolves "auto"). Returns the ideal code length in 1/256 bit.
    `lengths` (H, W, C) float32, or any array of size 1, receives each subpixel's code length."""
    width, channels = image.shape[1], image.shape[2]
    md = new_models(width, channels, t, p)
    sc = Scratch(np.zeros(K, dtype=np.int64), np.zeros(NUR + 1, dtype=np.int64), np.zeros(channels, dtype=np.int64),
                 np.zeros(contexts.N_CONTEXTS, dtype=np.int64), mixing.new_sel(p.mix_limit, p.mix_lr, p.halvings),
                 np.zeros(network.D, dtype=np.int64))
    pixels, ideal = 0, 0
    for y in range(y0, y1):
        r0, r1, r2 = rows.rows_at(y - y0)
        rows.start_row(md.rows, r0, r1)
        for x in range(width):
            for c in range(channels):
                bits = code_subpixel(image, y, x, c, r0, r1, r2, pixels, md, sc, t, io, p)
                ideal += bits
                if lengths.size > 1:
                    lengths[y, x, c] = bits / 256.0
            pixels += 1
        rows.end_row(md.rows, r0, width)
    return ideal


@numba.njit(cache=True, nogil=True)
def code_subpixel(image, y, x, c, r0, r1, r2, pixels, md, sc, t, io, p):
    """Predict, code and learn one subpixel; returns its code length in 1/256 bit."""
    X, V = x + PAD, md.rows.V
    par = (x & 1) | ((y & 1) << 1)
    pp = par if p.parity > 0 else 0
    predictors.predict(V, r0, r1, r2, X, c, sc.preds)
    base, best = predictors.blend(md.rows.err, r0, r1, r2, X, c, p.blend_far, sc.preds)
    bucket = energy.bucket(md.rows.fin, r0, r1, r2, X, c, best, p, t.edges)
    mu, by_lms, ws, ws_lms = correct(base, bucket, c, pp, X, r0, r1, r2, md, sc, t, p)
    light = mu >> (SH + 8 - p.intensity_bits)
    gradient, texture = contexts.shape(V, r0, r1, X, c, mu, t.edges)
    row = scale.row(md.scale, c, bucket, light, pp, gradient, texture, t.scale_of, p.scale_mix)
    offset = t.cdf.shape[1] >> 1
    table = t.cdf[scale.pick(md.scale, c, bucket, pp, row, p.scale_step, t.cdf.shape[0])]
    v = np.int64(0 if io.decode else image[y, x, c])
    if p.mix:
        P = min(255, (mu + (ONE >> 1)) >> SH)
        keep_w, keep_n = contexts.keeps(V, r0, r1, r2, X, c, P)
        nb = t.edges.shape[0] + 1
        mu2 = max(0, min(255 << SH, by_lms if p.ols > 0 else base))  # under the least squares the LMS's, else the blend
        contexts.fill(sc.cx, V, md.rows.res, sc.residual, r0, r1, r2, X, c, bucket, nb, gradient, texture, keep_w, keep_n,
                      P, mu, mu2, sc.preds[14 if c >= 1 else 2], par)
        contexts.select(sc.sel, c, V.shape[2], bucket, nb, keep_w, V[r1, X, c] - P, pixels, p.mix_lr)
        if p.seen:
            row = seen.key(V, r0, X, c, p.seen)
            sc.sel[mixing.SEEN_ROW], sc.sel[mixing.CHANNEL], sc.sel[mixing.PREDICTION] = row, c, P
            if row >= 0:
                sc.sel[mixing.SEEN_WINDOW], sc.sel[mixing.SEEN_FULL] = seen.window(md.mix.seen, row, P)
        v, bits = mixing.code_value(md.mix, v, P, table, offset, mu, mu2, sc.cx, sc.sel, STRETCH, RATES, t.code_length,
                                    io.decode, io.enc, io.out, io.dec, io.data)
    else:
        v, bits = code_direct(v, table, offset, mu, t.code_length, io)
    if io.decode:
        image[y, x, c] = v
    if p.seen and p.mix and sc.sel[mixing.SEEN_ROW] >= 0:
        seen.add(md.mix.seen, sc.sel[mixing.SEEN_ROW], v)
    v16 = v << SH
    rows.keep(md.rows, r0, X, c, v, v16, mu)
    predictors.update(md.rows.err, r0, X, c, v16, sc.preds)
    sc.residual[c] = v16 - mu
    scale.update(md.scale, c, bucket, light, pp, gradient, texture, row, v, abs(v16 - mu), mu, t.cdf, offset,
                 t.code_length, p)
    # the least squares solve every ols_interval-th pixel; with a set per parity, every ols_interval-th of its own
    learn(v16, base, by_lms, ws, ws_lms, (x >> 1) if p.ols_parity and p.parity > 0 else pixels, md, sc, p)
    return bits


@numba.njit(cache=True, nogil=True)
def correct(base, bucket, c, pp, X, r0, r1, r2, md, sc, t, p):
    """The learned correction of the blend `base`: (the prediction, clamped; the LMS's prediction;
    the least squares' weight set; the LMS's). The LMS alone (`fast`), or the least squares with
    the LMS beside them under the mixing stage, its prediction the second logistic's centre."""
    nb = t.edges.shape[0] + 1
    ns = p.weight_sets
    n_parity = 4 if p.parity > 0 else 1
    use_ols = p.ols > 0
    cls = (c * ns + (bucket * ns) // nb) * n_parity
    ws = cls + (pp if not use_ols or p.ols_parity else 0)  # pp is 0 without parity
    ws_lms = cls + pp if use_ols and p.mix else ws
    corrections.inputs(sc.u, sc.preds, base, sc.residual, md.rows.V, r0, r1, r2, X, c, use_ols and p.ols_wide > 0)
    blend, by_lms = base, base
    if not use_ols or p.mix:
        delta, _ = lms.predict(md.lms, ws_lms, sc.u, NU)
        blend = by_lms = base + delta
    if use_ols:
        n = ols_inputs(p)
        if p.network:  # the network's prediction, one more input of the least squares
            ref = network.features(md.rows.V, r0, r1, r2, X, c, sc.f)
            sc.u[n - 1] = (ref << SH) + network.predict(t.net, sc.f, c) - base
        blend = base + least_squares.predict(md.ols, ws, sc.u, n)
    return max(0, min(255 << SH, blend)), by_lms, ws, ws_lms


@numba.njit(cache=True, nogil=True, inline="always")
def ols_inputs(p):
    """The least squares' inputs: the LMS's, with `ols_wide` 8 more, with `network` its prediction."""
    return (NUR if p.ols_wide else NU) + (1 if p.network else 0)


@numba.njit(cache=True, nogil=True)
def learn(v16, base, by_lms, ws, ws_lms, tick, md, sc, p):
    """The corrections learn from the value."""
    use_ols = p.ols > 0
    if use_ols:
        decay = 1.0 - 1.0 / (1 << p.ols_decay_shift)
        least_squares.update(md.ols, ws, ols_inputs(p), v16 - base, decay, tick % p.ols_interval == 0,
                             p.ols_ridge * 0.01)
    if not use_ols or p.mix:
        norm = 0
        for k in range(NU):
            norm += sc.u[k] * sc.u[k]
        lms.update(md.lms, ws_lms, sc.u, NU, v16 - by_lms, norm, p.lms_shift)


@numba.njit(cache=True, nogil=True)
def code_direct(v, table, offset, mu, code_length, io):
    """Without the mixing stage: the value as one symbol under the logistic. (v, cost)."""
    if io.decode:
        v = np.int64(find(table, offset, mu, 0, 256, rc.target(io.dec)))
    low = cum(table, offset, mu, v)
    freq = cum(table, offset, mu, v + 1) - low
    if io.decode:
        rc.consume(io.dec, io.data, low, freq)
    else:
        rc.encode(io.enc, io.out, low, freq)
    return v, code_length[freq]

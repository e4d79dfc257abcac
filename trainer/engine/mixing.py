"""The engine's mixing stage (setting `mix`): each subpixel coded as binary decisions, each decision's
probability mixed from the logistic and adaptive context models, all in integer arithmetic.

Why: the logistic around the prediction has one shape for every context; its scale is the only
thing that adapts. Coding the value as decisions about the residual (zero? sign? which power-of-two
magnitude class? which half of it?) lets small adaptive counters, keyed on what the logistic does
not see (the residuals of this pixel's earlier channels, of the neighbours, the local texture),
correct it where they know better, as in the context-mixing codecs (paq8px's image models, EMMA):

1. The value as decisions around P, the prediction rounded: v == P? v > P? is |v - P| in a higher
   power-of-two class than [1], [2, 3], [4, 7] ...? which half of its class? Then the value within
   that half as one symbol under the logistic alone (the counters have little to add there, and
   each decision costs time). A decision whose side holds no value is not coded.
2. Each decision's inputs: the logistic's probability of each side, its mass there (the table's
   CDF), stretched: st(p) = ln(p / (1 - p)), in 1/256; the same for a logistic around a second
   prediction (the blend before the learned correction; under least squares, the LMS's); and `NCTX` counters, each a 22-bit
   probability with a count-driven rate (1/(n+2), down to the setting's limit), indexed by their
   context and the decision's kind, stretched likewise.
3. Two logistic mixers, p = squash(sum w_i st_i), each trained online on the coded bit
   (w += lr * err * st_i, lr 4x higher while a stripe is young), their weight sets chosen per channel and decision kind by different
   small contexts (the error energy; the prediction against the previous channel's difference),
   their outputs averaged in the stretched domain. The logistic's weight starts at 1 and the
   others at 0, so a stripe starts as coded without the stage.
4. An APM: the mixed probability refined by the error-energy context's own map of it
   (interpolated on 33 points), averaged in at 1/2.
5. The bit is range coded with p in 1/4096.

Everything is integer (the squash table below is the logistic at 33 points, in 1/4096, and `stretch`
its integer inverse), so encoder and decoder agree on every machine.
"""

import numba
import numpy as np

from trainer.engine import rangecoder as rc
from trainer.engine.tables import cum, find

NCTX = 9  # adaptive context models
NIN = NCTX + 3  # mixer inputs: the logistic, the counters, a second logistic, a bias
NODES = 16  # decision kinds: zero, sign, 7 magnitude classes, the first halving of 7 classes
CTX_SIZE = 1 << 17  # counters per context model (the largest context, 4 channels x 11 x 11 x 9 x NODES, fits)
APM_CONTEXTS = 32  # APM contexts per channel and node (the error energy bucket)
APM_RATE = 7
MIXER_SETS = 4  # mixer weight sets per channel and node, chosen by the error energy
MIXER_SETS2 = 9  # a second mixer's weight sets, chosen by the prediction against the previous channel
SQUASH_POINTS = np.array([1, 2, 4, 6, 10, 17, 27, 45, 74, 120, 194, 311, 488, 747, 1102, 1546, 2048, 2550, 2994,
                          3349, 3608, 3785, 3902, 3976, 4022, 4051, 4069, 4079, 4086, 4090, 4092, 4094, 4095],
                         dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def squash(d, points):
    """1/(1 + e^-d) in 1/4096 for d in 1/256, interpolated between the 33 points."""
    if d > 2047:
        return 4095
    if d < -2047:
        return 1
    w = d & 127
    i = (d >> 7) + 16
    return (points[i] * (128 - w) + points[i + 1] * w + 64) >> 7


def make_stretch() -> np.ndarray:
    """The inverse of `squash` on 0..4095 (integer: the smallest d whose squash reaches p)."""
    table = np.zeros(4096, dtype=np.int64)
    start = 0
    for d in range(-2047, 2048):
        value = squash(d, SQUASH_POINTS)
        table[start:value + 1] = d
        start = max(start, value + 1)
    table[start:] = 2047
    return table


def make_rates() -> np.ndarray:
    """65536 / (n + 2): a counter's step after n updates."""
    return np.array([65536 // (n + 2) for n in range(1024)], dtype=np.int64)


STRETCH = make_stretch()
RATES = make_rates()


@numba.njit(cache=True, nogil=True)
def new_state(channels):
    """(counters, mixer weights, APM maps, the mixer's inputs): one stripe's adaptive state. A counter is one uint32: its probability of a 1 in the high 22 bits, its
    update count in the low 10."""
    counters = np.full((NCTX, CTX_SIZE), 1 << 31, dtype=np.uint32)  # p = 1/2, n = 0
    weights = np.zeros((channels * NODES * (MIXER_SETS + MIXER_SETS2), NIN), dtype=np.int64)
    weights[:, 0] = 65536
    apm = np.zeros(channels * APM_CONTEXTS * NODES * 33, dtype=np.int64)
    for i in range(apm.shape[0]):
        apm[i] = squash(((i % 33) - 16) * 128, SQUASH_POINTS) * 16
    return counters, weights, apm, np.zeros(NIN, dtype=np.int64)


@numba.njit(cache=True, nogil=True, inline="always")
def _mass(table, offset, mu, a, b):
    """The logistic's mass on values a..b-1."""
    return cum(table, offset, mu, b) - cum(table, offset, mu, a)


@numba.njit(cache=True, nogil=True, inline="always")
def _stretched(table, offset, mu, a1, b1, a0, b0, stretch):
    """The logistic's stretched probability of values a1..b1-1 against a0..b0-1 (a0 < 0: all others)."""
    m1 = _mass(table, offset, mu, a1, b1)
    m0 = _mass(table, offset, mu, a0, b0) if a0 >= 0 else (1 << 16) - m1
    return stretch[max(1, min(4095, ((m1 << 12) + ((m1 + m0) >> 1)) // (m1 + m0)))]


@numba.njit(cache=True, nogil=True)
def code_value(v, P, table, offset, mu, mu2, cx, sel, counters, weights, apm, x, stretch, points, rates, code_length,
               decode, enc, out, dec, data):
    """Code value v (0..255; the decoder's comes from the stream) as decisions around P (the
    prediction, rounded): v == P? v > P? m = |v - P| >= 2, 4, 8 ...? (a decision whose side holds
    no value is not coded), then which half of its class, then m within that as one symbol under the logistic alone. The logistic inputs: the CDF
    row `table` (and its offset) at the prediction mu and at a second prediction mu2 (1/16 pixel);
    `cx`: the counters' context indices; `sel`: (mixer 1 set, mixer 2 set, APM context, counter
    limit, learning rate). Returns (v, its code length in 1/256 bit).

    One loop codes every decision (what it splits is set up by `stage`), so that the decision's
    code is compiled once."""
    cost = 0
    lr, limit = sel[4], sel[3]
    up = 1 if v > P else 0
    m = v - P if up else P - v
    stage, b, lo, hi, halved = 0, 0, 0, 0, 0
    while True:
        # the decision: bit 1 for values a1..b1-1, bit 0 for a0..b0-1
        if stage == 0:  # v == P?
            bit, a1, b1, a0, b0, node = (1 if v == P else 0), P, P + 1, -1, -1, 0
        elif stage == 1:  # v > P?
            bit, a1, b1, a0, b0, node = up, P + 1, 256, 0, P, 1
        elif stage == 2:  # is m in a higher class than [2^b, 2^(b+1))?
            top = 255 - P if up else P
            bit, node = (1 if m >= (2 << b) else 0), 2 + b
            a1, b1 = (P + (2 << b), top + P + 1) if up else (P - top, P - (2 << b) + 1)
            a0, b0 = (P + (1 << b), P + (2 << b)) if up else (P - (2 << b) + 1, P - (1 << b) + 1)
        else:  # is m in the upper half of its class lo..hi?
            mid = (lo + hi + 1) >> 1
            bit, node = (1 if m >= mid else 0), 8 + b
            a1, b1 = (P + mid, P + hi + 1) if up else (P - hi, P - mid + 1)
            a0, b0 = (P + lo, P + mid) if up else (P - mid + 1, P - lo + 1)
        # its probability: the logistic's, the counters', mixed twice, refined by the APM
        x[0] = _stretched(table, offset, mu, a1, b1, a0, b0, stretch)
        for i in range(NCTX):
            x[i + 1] = stretch[np.int64(counters[i, cx[i] + node]) >> 20]
        x[NCTX + 1] = _stretched(table, offset, mu2, a1, b1, a0, b0, stretch)
        x[NIN - 1] = 256
        ws, ws2 = sel[0] + node, sel[1] + node
        dot1, dot2 = 0, 0
        for i in range(NIN):
            dot1 += weights[ws, i] * x[i]
            dot2 += weights[ws2, i] * x[i]
        dot = max(-2047, min(2047, (dot1 + dot2) >> 17))
        pm = squash(dot, points)
        s = dot + 2048
        low_w = s & 127
        ja = (sel[2] + node) * 33 + (s >> 7)
        pa = (apm[ja] * (128 - low_w) + apm[ja + 1] * low_w) >> 11
        p16 = max(1, min(4095, (pm + pa + 1) >> 1)) << 4
        if decode:
            bit = 1 if rc.target(dec) < p16 else 0
            if bit:
                rc.consume(dec, data, 0, p16)
            else:
                rc.consume(dec, data, p16, 65536 - p16)
        elif bit:
            rc.encode(enc, out, 0, p16)
        else:
            rc.encode(enc, out, p16, 65536 - p16)
        cost += code_length[p16 if bit else 65536 - p16]
        # learn from it
        target = bit << 16
        apm[ja] += ((target - apm[ja]) * (128 - low_w)) >> (APM_RATE + 7)
        apm[ja + 1] += ((target - apm[ja + 1]) * low_w) >> (APM_RATE + 7)
        err1 = ((bit << 12) - squash(max(-2047, min(2047, dot1 >> 16)), points)) * lr
        err2 = ((bit << 12) - squash(max(-2047, min(2047, dot2 >> 16)), points)) * lr
        for i in range(NIN):
            weights[ws, i] += (x[i] * err1) >> 14
            weights[ws2, i] += (x[i] * err2) >> 14
        target = bit << 22
        for i in range(NCTX):
            j = cx[i] + node
            state = np.int64(counters[i, j])
            n, q = state & 1023, state >> 10
            q += ((target - q) * rates[n]) >> 16
            counters[i, j] = (q << 10) | (n + 1 if n < limit else n)
        # the next decision, or the value
        if stage == 0:
            if bit:
                return P, cost
            stage = 2 if P == 0 or P == 255 else 1
            if stage == 2:
                up = 1 if P == 0 else 0
        elif stage == 1:
            up = bit
            stage = 2
        elif stage == 2:
            if bit:
                b += 1
            else:
                stage = 3
        elif bit:
            lo = mid
        else:
            hi = mid - 1
        if stage == 1:
            continue
        if stage == 2:
            if (2 << b) > (255 - P if up else P):  # no higher class: m is in [2^b, top]
                stage = 3
        if stage == 3 and halved == 0:  # the class's first halving is a decision too
            lo, hi = 1 << b, min((2 << b) - 1, 255 - P if up else P)
            if hi > lo:
                halved = 1
                continue
        if stage == 3:
            if hi > lo:  # the value within its class: one symbol under the logistic alone
                a, z = (P + lo, P + hi + 1) if up else (P - hi, P - lo + 1)
                base = cum(table, offset, mu, a)
                total = cum(table, offset, mu, z) - base
                if decode:
                    v = find(table, offset, mu, a, z, rc.target_of(dec, total) + base)
                else:
                    v = P + m if up else P - m
                low = cum(table, offset, mu, v) - base
                freq = cum(table, offset, mu, v + 1) - base - low
                if decode:
                    rc.consume_of(dec, data, low, freq, total)
                else:
                    rc.encode_of(enc, out, low, freq, total)
                cost += code_length[max(1, (freq << 16) // total)]
                return v, cost
            return (P + lo if up else P - lo), cost

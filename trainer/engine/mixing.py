"""The engine's mixing stage (setting `mix`): each subpixel coded as binary decisions, each decision's
probability mixed from the logistic and adaptive context models, all in integer arithmetic.

Why: the logistic around the prediction has one shape for every context; its scale is the only
thing that adapts. Coding the value as decisions about the residual (zero? sign? which power-of-two
magnitude class? which half of it?) lets small adaptive counters, keyed on what the logistic does
not see, correct it where they know better, as in the context-mixing codecs (paq8px's image
models, EMMA):

1. The value as decisions around P, the prediction rounded: v == P? v > P? is |v - P| in a higher
   power-of-two class than [1], [2, 3], [4, 7] ...? which half of its class? Then the value within
   that half as one symbol under the logistic alone (the counters have little to add there, and
   each decision costs time). A decision whose side holds no value is not coded.
2. Each decision's inputs (`inputs`): the logistic's probability of each side, its mass there (the
   table's CDF), stretched: st(p) = ln(p / (1 - p)), in 1/256; the same for a logistic around a
   second prediction; one counter per context model (trainer.engine.models.counters; their contexts:
   trainer.engine.models.contexts), stretched likewise; a bias. Any number of context models.
3. Two logistic mixers (trainer.engine.models.mixer), their weight sets chosen per channel and
   decision kind by different small contexts, their outputs averaged in the stretched domain.
4. An APM (trainer.engine.models.apm): the mixed probability refined by the error-energy context's
   own map of it, averaged in at 1/2.
5. The bit is range coded with p in 1/4096.
"""

from collections import namedtuple

import numba
import numpy as np

from trainer.engine import rangecoder as rc
from trainer.engine.logistic import SQUASH_POINTS, squash
from trainer.engine.models import apm, counters, mixer, seen
from trainer.engine.models.contexts import APM_CONTEXTS, MIXER_SETS, MIXER_SETS2, NODES
from trainer.engine.tables import cum, find

# one stripe's adaptive state: counters (models x 2**bits), mixer weights, APM maps, the inputs,
# the colours seen (trainer.engine.models.seen) and the index of its counter for this decision
State = namedtuple("State", "counters weights apm x seen j")

# sel, the per-subpixel choices (trainer.engine.models.contexts.select): the two mixers' weight sets,
# the APM's context, the counters' limit, the mixers' learning rate, the seen-colours row (-1: none),
# the channel, the prediction rounded, the seen row's window around it and fullness (trainer.engine.models.seen.window),
# whether values are halved down to the value (setting `halvings`)
SEEN_ROW, CHANNEL, PREDICTION, SEEN_WINDOW, SEEN_FULL, HALVINGS = 5, 6, 7, 8, 9, 10


@numba.njit(cache=True, nogil=True)
def new_sel(limit, lr, halvings):
    """A stripe's `sel`: the fixed entries set, the per-subpixel ones filled as each is coded."""
    sel = np.zeros(11, dtype=np.int64)
    sel[3], sel[4], sel[SEEN_ROW], sel[HALVINGS] = limit, lr, -1, halvings
    return sel


@numba.njit(cache=True, nogil=True)
def new_state(channels, n_contexts, counter_bits, with_seen):
    n_inputs = n_contexts + 3 + (1 if with_seen else 0)  # the logistic, the counters, a second logistic, a bias, the seen colours
    return State(counters.new(n_contexts, 1 << counter_bits),
                 mixer.new(channels * NODES * (MIXER_SETS + MIXER_SETS2), n_inputs),
                 apm.new(channels * APM_CONTEXTS * NODES), np.zeros(n_inputs, dtype=np.int64),
                 seen.new(with_seen, NODES), np.zeros(1, dtype=np.int64))


@numba.njit(cache=True, nogil=True, inline="always")
def _stretched(table, offset, mu, a1, b1, a0, b0, stretch):
    """The logistic's stretched probability of values a1..b1-1 against a0..b0-1 (a0 < 0: all others)."""
    m1 = cum(table, offset, mu, b1) - cum(table, offset, mu, a1)
    m0 = cum(table, offset, mu, b0) - cum(table, offset, mu, a0) if a0 >= 0 else (1 << 16) - m1
    return stretch[max(1, min(4095, ((m1 << 12) + ((m1 + m0) >> 1)) // (m1 + m0)))]


@numba.njit(cache=True, nogil=True)
def _decision(stage, b, lo, hi, v, P, up, m):
    """(bit, a1, b1, a0, b0, node, mid): bit 1 for values a1..b1-1, 0 for a0..b0-1."""
    mid = 0
    if stage == 0:  # v == P?
        return (1 if v == P else 0), P, P + 1, -1, -1, 0, mid
    if stage == 1:  # v > P?
        return up, P + 1, 256, 0, P, 1, mid
    if stage == 2:  # is m in a higher class than [2^b, 2^(b+1))?
        top = 255 - P if up else P
        a1, b1 = (P + (2 << b), top + P + 1) if up else (P - top, P - (2 << b) + 1)
        a0, b0 = (P + (1 << b), P + (2 << b)) if up else (P - (2 << b) + 1, P - (1 << b) + 1)
        return (1 if m >= (2 << b) else 0), a1, b1, a0, b0, 2 + b, mid
    mid = (lo + hi + 1) >> 1  # is m in the upper half of its class lo..hi?
    a1, b1 = (P + mid, P + hi + 1) if up else (P - hi, P - mid + 1)
    a0, b0 = (P + lo, P + mid) if up else (P - mid + 1, P - lo + 1)
    return (1 if m >= mid else 0), a1, b1, a0, b0, 8 + b, mid


@numba.njit(cache=True, nogil=True)
def _inputs(st, table, offset, mu, mu2, a1, b1, a0, b0, cx, node, sel, stretch):
    x = st.x
    n = cx.shape[0]
    x[0] = _stretched(table, offset, mu, a1, b1, a0, b0, stretch)
    for i in range(n):
        x[i + 1] = stretch[counters.p12(st.counters, i, cx[i] + node)]
    x[n + 1] = _stretched(table, offset, mu2, a1, b1, a0, b0, stretch)
    x[n + 2] = 256
    if _with_seen(st, cx, sel):
        st.j[0] = seen.context(sel[SEEN_WINDOW], sel[SEEN_FULL], sel[CHANNEL], node, NODES, sel[PREDICTION],
                               a1, b1, a0, b0)
        x[n + 3] = stretch[counters.p12(st.seen.counters, 0, st.j[0])]
    elif x.shape[0] > n + 3:
        x[n + 3] = 0


@numba.njit(cache=True, nogil=True, inline="always")
def _with_seen(st, cx, sel):
    """Is the seen-colours model on, with a row for this subpixel?"""
    return st.x.shape[0] > cx.shape[0] + 3 and sel[SEEN_ROW] >= 0


@numba.njit(cache=True, nogil=True)
def _code_bit(bit, p16, decode, enc, out, dec, data):
    if decode:
        return rc.decode_bit(dec, data, p16)
    rc.encode_bit(enc, out, bit, p16)
    return bit


@numba.njit(cache=True, nogil=True)
def _decide(st, bit, table, offset, mu, mu2, a1, b1, a0, b0, node, cx, sel, stretch, points, rates, code_length,
            decode, enc, out, dec, data):
    """Code one decision (the decoder's bit comes from the stream) and learn from it: (bit, cost)."""
    _inputs(st, table, offset, mu, mu2, a1, b1, a0, b0, cx, node, sel, stretch)
    ws, ws2 = sel[0] + node, sel[1] + node
    dot1, dot2 = mixer.dot(st.weights, ws, st.x), mixer.dot(st.weights, ws2, st.x)
    pm = squash(max(-2047, min(2047, (dot1 + dot2) >> 17)), points)
    pa, ja, low_w = apm.refine(st.apm, sel[2] + node, max(-2047, min(2047, (dot1 + dot2) >> 17)))
    p16 = max(1, min(4095, (pm + pa + 1) >> 1)) << 4
    bit = _code_bit(bit, p16, decode, enc, out, dec, data)
    apm.update(st.apm, ja, low_w, bit)
    mixer.update(st.weights, ws, st.x, dot1, bit, sel[4], points)
    mixer.update(st.weights, ws2, st.x, dot2, bit, sel[4], points)
    for i in range(cx.shape[0]):
        counters.update(st.counters, i, cx[i] + node, bit, sel[3], rates)
    if _with_seen(st, cx, sel):
        counters.update(st.seen.counters, 0, st.j[0], bit, sel[3], rates)
    return bit, code_length[p16 if bit else 65536 - p16]


@numba.njit(cache=True, nogil=True)
def _last(v, P, up, m, lo, hi, table, offset, mu, code_length, decode, enc, out, dec, data):
    """The value within lo..hi of its class as one symbol under the logistic alone: (v, cost)."""
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
    return v, code_length[max(1, (freq << 16) // total)]


@numba.njit(cache=True, nogil=True)
def code_value(st, v, P, table, offset, mu, mu2, cx, sel, stretch, rates, code_length, decode, enc, out, dec, data):
    """Code value v (0..255; the decoder's comes from the stream) as decisions around P (the
    prediction, rounded); the logistic's CDF row `table` (and its offset) at the prediction mu and
    at a second prediction mu2 (1/16 pixel); `cx`: the counters' contexts; `sel`: (mixer 1 set,
    mixer 2 set, APM context, counter limit, learning rate). Returns (v, its code length in 1/256
    bit). Stages: 0 v == P?, 1 v > P?, 2 a higher magnitude class?, 3 which half of the class."""
    cost = 0
    up = 1 if v > P else 0
    m = v - P if up else P - v
    stage, b, lo, hi, halved = 0, 0, 0, 0, 0
    while True:
        bit, a1, b1, a0, b0, node, mid = _decision(stage, b, lo, hi, v, P, up, m)
        bit, bits = _decide(st, bit, table, offset, mu, mu2, a1, b1, a0, b0, node, cx, sel, stretch, SQUASH_POINTS,
                            rates, code_length, decode, enc, out, dec, data)
        cost += bits
        if stage == 0:
            if bit:
                return P, cost
            stage = 2 if P == 0 or P == 255 else 1
            if stage == 2:
                up = 1 if P == 0 else 0
        elif stage == 1:
            up, stage = bit, 2
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
        if stage == 2 and (2 << b) > (255 - P if up else P):  # no higher class: m is in [2^b, top]
            stage = 3
        if stage == 3 and halved == 0:  # the class's first halving is a decision too
            lo, hi = 1 << b, min((2 << b) - 1, 255 - P if up else P)
            if hi > lo:
                halved = 1
                continue
        if stage == 3:
            if hi > lo and sel[HALVINGS] and _with_seen(st, cx, sel):
                continue  # halvings down to the value: the seen colours know which values occur
            if hi > lo:
                v, bits = _last(v, P, up, m, lo, hi, table, offset, mu, code_length, decode, enc, out, dec, data)
                return v, cost + bits
            return (P + lo if up else P - lo), cost

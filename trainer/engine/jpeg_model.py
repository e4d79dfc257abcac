"""pixlm's own model of a JPEG's quantized DCT coefficients (issue 34, item 1), compiled (numba).

Lepton and JPEG-XL code each binary decision of a coefficient from one context; paq8px mixes many.
This model does as the engine does for pixels: each decision's probability is mixed from six
hashed context models (models/counters.py) by a gated logistic mixer and refined by an APM
(models/apm.py), then coded by the engine's range coder. Components are coded one after another
(luma first, so chroma sees its luma), blocks in raster order, and in each block (Lepton's order):

1. `_interior`: how many of the 49 coefficients of rows and columns 1-7 are not zero (six binary
   decisions, in the context of the neighbours' counts), then those coefficients in zigzag order
   until every nonzero one is coded: zero or not, the magnitude's bit length (unary), its lower
   bits, its sign (`_coefficient`). Contexts: the position, how many nonzero are left, the same
   coefficient in the blocks above, to the left and diagonal (and the luma or Cb block at the same
   place), and the lower frequencies of the block itself;
2. `_edges`: the first row, then the first column, each predicted from the neighbour across that
   edge: the block's edge line of pixels continuing the neighbour's facing line, in integer DCT
   arithmetic (what is known of the block, the interior, is taken out of the prediction);
3. `_dc`: the DC, as its difference from the level that best continues both neighbours' facing
   pixels, the spread of their disagreement its context; then `_borders` keeps the block's bottom
   row and right column of pixels for the blocks below and to the right.

One kernel runs both ways (`decoding`), so encoder and decoder make the same decisions from the
same state; everything is integer, so every machine and CPU level gives the same bytes. The model's
cost in bits by decision kind is returned too (ideal code length), for studies.
"""

import numba
import numpy as np

from trainer.engine import rangecoder
from trainer.engine.logistic import SQUASH_POINTS, STRETCH, squash
from trainer.engine.models import apm, counters
from trainer.engine.models.counters import RATES

N_INPUTS = 6  # hashed context models a decision
TABLE_BITS = 20  # counters per context model
LIMIT = 255  # counters' slowest rate: 1/(LIMIT+2)
MIXER_LR = 6
APM_CONTEXTS = 4096

# decision kinds (part of every context)
NNZ, ZERO, EXPONENT, MANTISSA, SIGN = range(5)

# zigzag index -> natural (row, column) frequencies
ZIGZAG = np.array([0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
                   20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58,
                   59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63], dtype=np.int64)


def _neighbours_in_block():
    """For each zigzag index: the zigzag indices of the coefficient one row up and one column left
    in frequency where both are in the interior (rows and columns 1-7, coded first, in zigzag order, so
    both come before it); -1 otherwise."""
    where = {int(n): k for k, n in enumerate(ZIGZAG)}
    up, left = np.full(64, -1, dtype=np.int64), np.full(64, -1, dtype=np.int64)
    for k, n in enumerate(ZIGZAG):
        r, c = divmod(int(n), 8)
        if r > 1 and c > 0:  # the interior is coded first: only interior neighbours are known
            up[k] = where[(r - 1) * 8 + c]
        if c > 1 and r > 0:
            left[k] = where[r * 8 + c - 1]
    return up, left


UP_IN_BLOCK, LEFT_IN_BLOCK = _neighbours_in_block()


@numba.njit(cache=True, nogil=True, inline="always")
def _bucket(x):
    """A magnitude on a quasi-log scale: 0, 1, 2, 3, then two steps an octave, at most 15."""
    if x < 4:
        return x
    b = 0
    while x >> b:
        b += 1
    q = 2 * b - 2 + ((x >> (b - 2)) & 1)
    return q if q < 15 else 15


@numba.njit(cache=True, nogil=True, inline="always")
def _hash(a, b, c, d, e):
    h = np.uint64(0)
    for v in (a, b, c, d, e):
        h = (h + np.uint64(v + 1)) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    return h


LOG_COST = np.array([0.0] + [-np.log2(p / 4096) for p in range(1, 4096)], dtype=np.float64)

# round(4096 * s_u * cos((2y + 1) u pi / 16)): the orthonormal 8-point DCT's basis, integer, so that
# every machine predicts the same (floats may round differently from one CPU's kernels to another's)
BASIS = np.array([[1448, 1448, 1448, 1448, 1448, 1448, 1448, 1448],
                  [2009, 1703, 1138, 400, -400, -1138, -1703, -2009],
                  [1892, 784, -784, -1892, -1892, -784, 784, 1892],
                  [1703, -400, -2009, -1138, 1138, 2009, 400, -1703],
                  [1448, -1448, -1448, 1448, 1448, -1448, -1448, 1448],
                  [1138, -2009, 400, 1703, -1703, -400, 2009, -1138],
                  [784, -1892, 1892, -784, -784, 1892, -1892, 784],
                  [400, -1138, 1703, -2009, 2009, -1703, 1138, -400]], dtype=np.int64)
ZIGZAG_OF = np.argsort(ZIGZAG).astype(np.int64)  # natural index -> zigzag index
# the interior (row and column frequency both > 0) in zigzag order
INTERIOR = np.array([k for k in range(64) if ZIGZAG[k] // 8 > 0 and ZIGZAG[k] % 8 > 0], dtype=np.int64)

# a block's neighbourhood (`_neighbourhood`): offsets in `flat` of the block (B), the blocks above (A),
# left (L), above-left (AL), above-right (AR), of the reference component's block at the same place
# (REF; luma for Cb, Cb for Cr) and the one before it (REFP), -1 where there is none; their indices among all blocks (G...);
# which edges the block lies on (EDGE: 1 top, 2 left) and its class (CLS: 0 luma, 1 other)
B, A, L, AL, AR, REF, REFP, G, GA, GL, GAR, GREF, EDGE, CLS = range(14)


def new_model():
    """The model's state: (context hashes, stretched inputs, counter indices, counters, mixer
    weights, APM); the coder's state and buffer and the cost by kind are added by `_run`'s callers."""
    weights = np.zeros((16 * 64 * 16, N_INPUTS + 1), dtype=np.int64)
    weights[:, :N_INPUTS] = 65536 // 4
    return (np.zeros(N_INPUTS, dtype=np.uint64), np.zeros(N_INPUTS + 1, dtype=np.int64),
            np.zeros(N_INPUTS, dtype=np.int64), counters.new(N_INPUTS, 1 << TABLE_BITS), weights,
            apm.new(APM_CONTEXTS))


@numba.njit(cache=True, nogil=True)
def _code_bit(bit, kind_set, apm_ctx, m):
    """One binary decision: mix the context models' probabilities (the hashes in m's `ctx`; weight
    set `kind_set`), refine (APM context `apm_ctx`), code or decode the bit, learn. Returns the bit."""
    ctx, x, idx, cnt, weights, amap, rc, buf, cost, decoding = m
    total = 0
    for i in range(N_INPUTS):
        j = np.int64(ctx[i] >> np.uint64(64 - TABLE_BITS))
        idx[i] = j
        x[i] = STRETCH[counters.p12(cnt, i, j)]
        total += weights[kind_set, i] * x[i]
    x[N_INPUTS] = 256
    total += weights[kind_set, N_INPUTS] * 256
    d = total >> 16
    d = -2047 if d < -2047 else (2047 if d > 2047 else d)
    p_mix = squash(d, SQUASH_POINTS)
    p_apm, aj, aw = apm.refine(amap, apm_ctx, d)
    p = (p_mix + 3 * p_apm + 2) >> 2
    p = 1 if p < 1 else (4095 if p > 4095 else p)
    p16 = p << 4
    if decoding:
        bit = rangecoder.decode_bit(rc, buf, p16)
    else:
        rangecoder.encode_bit(rc, buf, bit, p16)
    cost[kind_set >> 10] += LOG_COST[p] if bit else LOG_COST[4096 - p]
    for i in range(N_INPUTS):
        counters.update(cnt, i, idx[i], bit, LIMIT, RATES)
    err = ((bit << 12) - p_mix) * MIXER_LR
    for i in range(N_INPUTS + 1):
        weights[kind_set, i] += (x[i] * err) >> 14
    apm.update(amap, aj, aw, bit)
    return bit


@numba.njit(cache=True, nogil=True, inline="always")
def _bitlen(x):
    n = 0
    while x >> n:
        n += 1
    return n


@numba.njit(cache=True, nogil=True, inline="always")
def _sign(v):
    return 0 if v == 0 else (1 if v > 0 else 2)


@numba.njit(cache=True, nogil=True, inline="always")
def _div(a, b):
    """a / b rounded to nearest (b > 0), the same for either sign of a."""
    return (a + b // 2) // b if a >= 0 else -((-a + b // 2) // b)


@numba.njit(cache=True, nogil=True)
def _coefficient(value, forced, k, kind_sub, cls, rem, frac, a, b, c, d, e, s1, s2, s3, m):
    """One coefficient: zero or not (unless `forced`), the bit length of its magnitude, its lower
    bits, its sign, each decision in the contexts given (a..e: magnitudes' buckets, s1..s3: signs'
    contexts, rem / frac: how many nonzero are left). Returns the value (`value` when encoding)."""
    ctx = m[0]
    nonzero = 1
    if not forced:
        ctx[0] = _hash(ZERO, k, rem, cls, 0)
        ctx[1] = _hash(ZERO + 16, k, a, cls, 0)
        ctx[2] = _hash(ZERO + 32, k, b, cls, 0)
        ctx[3] = _hash(ZERO + 48, k, c, rem, cls)
        ctx[4] = _hash(ZERO + 64, k, d, rem, cls)
        ctx[5] = _hash(ZERO + 80, k, e, frac, cls)
        nonzero = _code_bit(1 if value != 0 else 0, (ZERO * 64 + k) * 16 + kind_sub,
                            ZERO * 256 + k * 4 + min(c >> 2, 3), m)
    if nonzero == 0:
        return 0
    mag = abs(value)
    bits = _bitlen(mag)
    j = 1
    while j < 15:
        ctx[0] = _hash(EXPONENT, k, j, c, cls)
        ctx[1] = _hash(EXPONENT + 16, k, j, a, cls)
        ctx[2] = _hash(EXPONENT + 32, k, j, b, cls)
        ctx[3] = _hash(EXPONENT + 48, k, j, rem, cls)
        ctx[4] = _hash(EXPONENT + 64, k, j, d, cls)
        ctx[5] = _hash(EXPONENT + 80, k, j, e, cls)
        if _code_bit(1 if bits > j else 0, (EXPONENT * 64 + k) * 16 + j, EXPONENT * 256 + k * 4 + min(j - 1, 3),
                     m) == 0:
            break
        j += 1
    bits = j
    out = 1
    for i in range(bits - 2, -1, -1):
        top = out if bits - 2 - i < 3 else 0
        ctx[0] = _hash(MANTISSA, k, bits, i, top)
        ctx[1] = _hash(MANTISSA + 16, bits, i, top, c)
        ctx[2] = _hash(MANTISSA + 32, bits, i, top, cls)
        ctx[3] = _hash(MANTISSA + 48, k, bits, i, a)
        ctx[4] = _hash(MANTISSA + 64, k, bits, i, d)
        ctx[5] = _hash(MANTISSA + 80, bits, i, top, b)
        out = out * 2 + _code_bit((mag >> i) & 1, (MANTISSA * 64 + k) * 16 + bits,
                                  MANTISSA * 256 + bits * 16 + min(i, 15), m)
    ctx[0] = _hash(SIGN, k, s1, cls, 0)
    ctx[1] = _hash(SIGN + 16, k, s2, cls, 0)
    ctx[2] = _hash(SIGN + 32, k, s3, cls, 0)
    ctx[3] = _hash(SIGN + 48, k, cls, 0, 0)
    ctx[4] = _hash(SIGN + 64, k, s1, s2, 0)
    ctx[5] = _hash(SIGN + 80, k, s1, s3, bits)
    negative = _code_bit(1 if value < 0 else 0, (SIGN * 64 + k) * 16 + kind_sub, SIGN * 256 + k * 4 + min(s1, 3), m)
    return -out if negative else out


@numba.njit(cache=True, nogil=True)
def _count(n, width, kind_sub, c1, c2, c3, c4, m):
    """A count of `width` bits, MSB first, each bit in the contexts c1..c4 and the bits before it."""
    ctx = m[0]
    node = 1
    for i in range(width):
        ctx[0] = _hash(NNZ, kind_sub, node, c1, 0)
        ctx[1] = _hash(NNZ + 16, kind_sub, node, c2, 0)
        ctx[2] = _hash(NNZ + 32, kind_sub, node, c3, 0)
        ctx[3] = _hash(NNZ + 48, kind_sub, node, c4, 0)
        ctx[4] = _hash(NNZ + 64, kind_sub, node, c1, c3)
        ctx[5] = _hash(NNZ + 80, kind_sub, node, c2, c4)
        bit = _code_bit((n >> (width - 1 - i)) & 1, (NNZ * 64 + node) * 16 + kind_sub,
                        NNZ * 256 + node * 2 + (kind_sub & 1), m)
        node = node * 2 + bit
    return node - (1 << width)


@numba.njit(cache=True, nogil=True)
def _neighbourhood(at, c, r, col, ref, offsets, rows, cols, samp, block_start):
    """Fill `at` (indexed by B, A, ...) for block (r, col) of component c."""
    bi = r * cols[c] + col
    at[G] = block_start[c] + bi
    at[B] = offsets[c] + bi * 64
    at[A] = at[B] - cols[c] * 64 if r > 0 else -1
    at[L] = at[B] - 64 if col > 0 else -1
    at[AL] = at[A] - 64 if (r > 0 and col > 0) else -1
    at[AR] = at[A] + 64 if (r > 0 and col + 1 < cols[c]) else -1
    at[GA] = at[G] - cols[c] if r > 0 else -1
    at[GL] = at[G] - 1 if col > 0 else -1
    at[GAR] = at[GA] + 1 if at[AR] >= 0 else -1
    at[REF] = -1
    at[REFP] = -1
    at[GREF] = -1
    if ref >= 0:
        rr = min(r * samp[ref, 1] // samp[c, 1], rows[ref] - 1)
        rq = min(col * samp[ref, 0] // samp[c, 0], cols[ref] - 1)
        at[REF] = offsets[ref] + (rr * cols[ref] + rq) * 64
        at[REFP] = at[REF] - 64 if rr * cols[ref] + rq > 0 else -1
        at[GREF] = block_start[ref] + rr * cols[ref] + rq
    at[EDGE] = (1 if r == 0 else 0) + (2 if col == 0 else 0)
    at[CLS] = 0 if c == 0 else 1


@numba.njit(cache=True, nogil=True)
def _interior(flat, at, counts, m):
    """The interior's nonzero count (0..49), then its coefficients in zigzag order."""
    b, a, lft, al, ar, rb, cls, edge = at[B], at[A], at[L], at[AL], at[AR], at[REF], at[CLS], at[EDGE]
    n_a = counts[at[GA], 0] if a >= 0 else 0
    n_l = counts[at[GL], 0] if lft >= 0 else 0
    n_ar = counts[at[GAR], 0] if ar >= 0 else 0
    n_ref = counts[at[GREF], 0] if rb >= 0 else 0
    n_avg = (n_a + n_l + 1) >> 1 if edge == 0 else (n_a if lft < 0 else n_l)
    nnz = 0
    if not m[9]:
        for k in INTERIOR:
            if flat[b + k] != 0:
                nnz += 1
    nnz = min(_count(nnz, 6, cls * 4 + edge, n_avg, _bucket(n_a) * 16 + _bucket(n_l),
                     _bucket(n_ref) * 16 + (n_avg >> 2), _bucket(n_ar) * 16 + _bucket(n_avg), m), 49)
    counts[at[G], 0] = nnz
    remaining = nnz
    run = 0
    for t in range(49):
        k = INTERIOR[t]
        if remaining == 0:
            flat[b + k] = 0
            continue
        va = flat[a + k] if a >= 0 else 0
        vl = flat[lft + k] if lft >= 0 else 0
        val = flat[al + k] if al >= 0 else 0
        var = flat[ar + k] if ar >= 0 else 0
        vr = flat[rb + k] if rb >= 0 else 0
        up = flat[b + UP_IN_BLOCK[k]] if UP_IN_BLOCK[k] >= 0 else 0
        le = flat[b + LEFT_IN_BLOCK[k]] if LEFT_IN_BLOCK[k] >= 0 else 0
        ma, ml = abs(va), abs(vl)
        pred = 2 * (ma + ml) + abs(val) + abs(var)
        v = _coefficient(flat[b + k], remaining == 49 - t, k, cls, cls, _bucket(remaining),
                         (remaining * 16) // (49 - t), _bucket(ma) * 16 + _bucket(ml),
                         _bucket(abs(up)) * 16 + _bucket(abs(le)), _bucket(pred), _bucket(abs(vr)) * 2 + cls,
                         _bucket(run), _sign(va) * 3 + _sign(vl), _sign(up) * 3 + _sign(le),
                         _sign(vr) * 3 + _sign(val), m)
        flat[b + k] = v
        if v != 0:
            remaining -= 1
            run = 0
        else:
            run += 1


@numba.njit(cache=True, nogil=True)
def _edges(flat, at, counts, q, deq, m):
    """The first row (side 0: its neighbour the block above), then the first column (side 1: the
    block to the left): a nonzero count each (0..7), then its coefficients, each predicted by the
    edge line continuing the neighbour's facing line (`lak`, in quarter quantization steps)."""
    b, rb, cls, edge = at[B], at[REF], at[CLS], at[EDGE]
    for side in range(2):
        nb = at[A] if side == 0 else at[L]
        n_side = counts[at[GA] if side == 0 else at[GL], 1 + side] if nb >= 0 else 0
        nnz = 0
        if not m[9]:
            for i in range(1, 8):
                if flat[b + ZIGZAG_OF[i if side == 0 else 8 * i]] != 0:
                    nnz += 1
        nnz = _count(nnz, 3, 8 + side * 4 + cls * 2 + (1 if nb < 0 else 0), _bucket(counts[at[G], 0]), n_side,
                     _bucket(0 if rb < 0 else counts[at[GREF], 1 + side]), edge, m)
        counts[at[G], 1 + side] = nnz
        remaining = nnz
        for i in range(1, 8):
            n = i if side == 0 else 8 * i
            k = ZIGZAG_OF[n]
            if remaining == 0:
                flat[b + k] = 0
                continue
            # this block's edge line of frequency i without its own (0, i) term, and the neighbour's
            # facing line, both in 1/4096 of a quantization step
            known = 0
            for j in range(1, 8):
                known += deq[j * 8 + i if side == 0 else i * 8 + j] * BASIS[j, 0]
            lak = 0
            if nb >= 0:
                facing = 0
                for j in range(8):
                    nn = j * 8 + i if side == 0 else i * 8 + j
                    facing += flat[nb + ZIGZAG_OF[nn]] * q[nn] * BASIS[j, 7]
                lak = _div(4 * (facing - known), q[n] * BASIS[0, 0])
            vn = flat[nb + k] if nb >= 0 else 0
            vr = flat[rb + k] if rb >= 0 else 0
            mag_lak = _bucket(abs(lak)) if nb >= 0 else 15
            v = _coefficient(flat[b + k], remaining == 8 - i, k, 2 + side, cls, _bucket(remaining), i, mag_lak,
                             _bucket(abs(vn)) * 16 + _bucket(abs(flat[b + ZIGZAG_OF[n + (8 if side == 0 else 1)]])),
                             _bucket(abs(lak) >> 2) * 2 + cls, _bucket(abs(vr)) * 2 + side, edge,
                             _sign(lak) * 16 + min(mag_lak, 15), _sign(vn) * 3 + _sign(vr),
                             _sign(lak) * 3 + _sign(vr), m)
            flat[b + k] = v
            deq[n] = v * q[n]
            if v != 0:
                remaining -= 1


@numba.njit(cache=True, nogil=True)
def _edge_pixel(deq, side, j, y):
    """Pixel j of the block's row y (side 0) or column y (side 1), in 1/2**24 of a quantization step."""
    s = 0
    for u in range(8):
        t = 0
        for w in range(8):
            t += deq[u * 8 + w] * BASIS[w, j] if side == 0 else deq[w * 8 + u] * BASIS[w, j]
        s += t * BASIS[u, y]
    return s


@numba.njit(cache=True, nogil=True)
def _dc(flat, at, counts, border, q, deq, m):
    """The DC: the level that best continues the neighbours' facing pixels, then the difference."""
    b, rb = at[B], at[REF]
    deq[0] = 0
    total, weight, lo, hi = 0, 0, 1 << 62, -(1 << 62)
    for side in range(2):
        if (at[A] if side == 0 else at[L]) < 0:
            continue
        for j in range(8):
            gap = border[at[GA] if side == 0 else at[GL], side, j] - _edge_pixel(deq, side, j, 0)
            total += gap
            lo = min(lo, gap)
            hi = max(hi, gap)
        weight += 8
    unit = q[0] * BASIS[0, 0] * BASIS[0, 0]  # one DC step on every pixel
    pdc = _div(total, unit * weight) if weight else 0
    spread = _bucket((hi - lo) // unit) if weight else 15
    ref_step = _bucket(abs(flat[rb] - flat[at[REFP]])) if at[REFP] >= 0 else 0  # the reference's DC step
    res = _coefficient(flat[b] - pdc, False, 0, 4 + at[EDGE], at[CLS], spread, 0, spread,
                       _bucket(counts[at[G], 0]), spread, ref_step, at[EDGE],
                       _sign(total - pdc * unit * weight) if weight else 0, at[EDGE], 0, m)
    flat[b] = pdc + res
    deq[0] = flat[b] * q[0]


@numba.njit(cache=True, nogil=True)
def _run(flat, offsets, rows, cols, samp, quant, m):
    """Code (or decode into `flat`) every component's coefficients; see the module's docstring."""
    ncomp = offsets.shape[0]
    block_start = np.zeros(ncomp + 1, dtype=np.int64)
    for c in range(ncomp):
        block_start[c + 1] = block_start[c] + rows[c] * cols[c]
    # per block: nonzero counts (interior, first row, first column); its bottom row and right column
    # of pixels, for the blocks below and to the right
    counts = np.zeros((block_start[ncomp], 3), dtype=np.int64)
    border = np.zeros((block_start[ncomp], 2, 8), dtype=np.int64)
    deq = np.zeros(64, dtype=np.int64)
    q = np.zeros(64, dtype=np.int64)
    at = np.zeros(14, dtype=np.int64)
    for c in range(ncomp):
        ref = -1 if c == 0 else (0 if c == 1 else c - 1)
        for n in range(64):
            q[n] = quant[c, ZIGZAG_OF[n]]
        for r in range(rows[c]):
            for col in range(cols[c]):
                _neighbourhood(at, c, r, col, ref, offsets, rows, cols, samp, block_start)
                _interior(flat, at, counts, m)
                for n in range(64):
                    deq[n] = flat[at[B] + ZIGZAG_OF[n]] * q[n]
                _edges(flat, at, counts, q, deq, m)
                _dc(flat, at, counts, border, q, deq, m)
                for side in range(2):
                    for j in range(8):
                        border[at[G], side, j] = _edge_pixel(deq, side, j, 7)


def _quant(quant) -> np.ndarray:
    return np.array(quant, dtype=np.int64).reshape(-1, 64)


def encode(flat, offsets, rows, cols, samp, quant) -> tuple[bytes, np.ndarray]:
    """(the coded coefficients, the model's cost in bits by decision kind). `flat`: every
    component's coefficients (int16, zigzag); the kernel writes each value back as it codes it, the
    same value, so it is left as it was."""
    state, out = rangecoder.new_encoder(flat.shape[0] * 3 + 1024)
    cost = np.zeros(16)
    _run(flat, offsets, rows, cols, samp, _quant(quant), (*new_model(), state, out, cost, False))
    n = rangecoder.finish(state, out)
    return out[:n].tobytes(), cost


def decode(payload: bytes, flat, offsets, rows, cols, samp, quant) -> None:
    """Decode the coefficients into `flat` (int16, the layout `encode` took)."""
    data = np.frombuffer(payload, dtype=np.uint8).copy()  # one kernel both ways: a writable buffer
    state = rangecoder.new_decoder(data)[0]
    _run(flat, offsets, rows, cols, samp, _quant(quant), (*new_model(), state, data, np.zeros(16), True))

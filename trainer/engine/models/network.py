"""A small network trained offline on photos, as one of the engine's models: from the causal
neighbourhood it predicts the value; its prediction is one more input of the least squares (setting
`network`), which weigh it against the classical predictors per context, online.

Inputs (D = 13, each clipped to -128..127): the channel's N, W, NW, NE, WW, NN, NNE, NNW, minus
ref = (N + W + 1) >> 1; for the second and third channels the previous channel's value at this
pixel and its N, W, NE, minus that channel's own ref; for the third, the first channel's value
minus its ref. One hidden layer of H ReLU units, one output: the value minus ref, in 1/16 pixel.
One set of weights per channel slot (0, 1, 2; a fourth channel uses the third's).

Exact integer inference: int8 weights, int32-range sums, arithmetic shifts (`w1` scaled by
2**s1 + kh, the hidden units kept at 2**kh, so `h = max(0, w1 . f + b1) >> s1` clipped to 0..255;
`out = (w2 . h + b2) >> s2`); `predict_numpy` computes the same integers for training and tests.
Trained by benchmarks/studies/network_study.py (float, then quantized), stored in the bundle's tables.
"""

from collections import namedtuple

import numba
import numpy as np

D, SLOTS = 13, 3
Net = namedtuple("Net", "w1 b1 w2 b2 shifts")  # (3, H, D), (3, H), (3, H), (3,), (3, 2): s1, s2


def empty() -> Net:
    """No network (a bundle without one): never read, as `network` is then 0."""
    return Net(np.zeros((SLOTS, 1, D), np.int64), np.zeros((SLOTS, 1), np.int64), np.zeros((SLOTS, 1), np.int64),
               np.zeros(SLOTS, np.int64), np.zeros((SLOTS, 2), np.int64))


def from_tables(tables: dict) -> Net:
    if "net_w1" not in tables:
        return empty()
    return Net(*(np.ascontiguousarray(tables[f"net_{k}"], dtype=np.int64) for k in Net._fields))


@numba.njit(cache=True, nogil=True, inline="always")
def _clip(v):
    return max(-128, min(127, v))


@numba.njit(cache=True, nogil=True)
def features(V, r0, r1, r2, X, c, f):
    """Fill f (D,) with the inputs of channel c at column X (rows r0: this, r1: above, r2: two above);
    returns ref, the value the output is relative to."""
    ref = (V[r1, X, c] + V[r0, X - 1, c] + 1) >> 1
    f[0] = _clip(V[r1, X, c] - ref)
    f[1] = _clip(V[r0, X - 1, c] - ref)
    f[2] = _clip(V[r1, X - 1, c] - ref)
    f[3] = _clip(V[r1, X + 1, c] - ref)
    f[4] = _clip(V[r0, X - 2, c] - ref)
    f[5] = _clip(V[r2, X, c] - ref)
    f[6] = _clip(V[r2, X + 1, c] - ref)
    f[7] = _clip(V[r2, X - 1, c] - ref)
    for k in range(8, D):
        f[k] = 0
    if c >= 1:
        q = c - 1
        rq = (V[r1, X, q] + V[r0, X - 1, q] + 1) >> 1
        f[8] = _clip(V[r0, X, q] - rq)
        f[9] = _clip(V[r1, X, q] - rq)
        f[10] = _clip(V[r0, X - 1, q] - rq)
        f[11] = _clip(V[r1, X + 1, q] - rq)
    if c >= 2:
        q = c - 2
        f[12] = _clip(V[r0, X, q] - ((V[r1, X, q] + V[r0, X - 1, q] + 1) >> 1))
    return ref


@numba.njit(cache=True, nogil=True)
def predict(net, f, c):
    """The network's output for inputs f of channel c: the value minus ref, in 1/16 pixel."""
    s = min(c, SLOTS - 1)
    hidden = net.w1.shape[1]
    out = net.b2[s]
    for j in range(hidden):
        acc = net.b1[s, j]
        for i in range(D):
            acc += net.w1[s, j, i] * f[i]
        if acc > 0:
            out += net.w2[s, j] * min(255, acc >> net.shifts[s, 0])
    return out >> net.shifts[s, 1]


def predict_numpy(net: Net, f: np.ndarray, slot: int) -> np.ndarray:
    """`predict` for many inputs (N, D) of one channel slot, in the same integers."""
    acc = f.astype(np.int64) @ net.w1[slot].T.astype(np.int64) + net.b1[slot]
    hidden = np.minimum(255, np.where(acc > 0, acc >> net.shifts[slot, 0], 0))
    return (hidden @ net.w2[slot].astype(np.int64) + net.b2[slot]) >> net.shifts[slot, 1]


def features_numpy(image: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), ref (N,)) of channel c at every pixel with two rows above and two columns
    each side, as `features` computes them there (training and tests)."""
    v = image.astype(np.int64)
    h, w = v.shape[:2]

    def at(dy, dx, ch):
        return v[2 + dy:h + dy, 2 + dx:w - 2 + dx, ch].reshape(-1)

    ref = (at(-1, 0, c) + at(0, -1, c) + 1) >> 1
    cols = [at(-1, 0, c), at(0, -1, c), at(-1, -1, c), at(-1, 1, c), at(0, -2, c), at(-2, 0, c), at(-2, 1, c),
            at(-2, -1, c)]
    f = [x - ref for x in cols] + [np.zeros_like(ref)] * 5
    if c >= 1:
        q = c - 1
        rq = (at(-1, 0, q) + at(0, -1, q) + 1) >> 1
        f[8:12] = [at(0, 0, q) - rq, at(-1, 0, q) - rq, at(0, -1, q) - rq, at(-1, 1, q) - rq]
    if c >= 2:
        f[12] = at(0, 0, c - 2) - ((at(-1, 0, c - 2) + at(0, -1, c - 2) + 1) >> 1)
    return np.clip(np.stack(f, axis=1), -128, 127), ref


def quantize(layers: list[dict], kh: int = 2) -> Net:
    """Net of float weights per slot ({"w1" (H, D), "b1" (H,), "w2" (H,), "b2": float}; output in
    1/16 pixel): w1 to int8 at 2**k1, the hidden units at 2**kh, w2 to int8 at 2**k2."""
    w1, b1, w2, b2, shifts = [], [], [], [], []
    for layer in layers:
        k1 = int(np.floor(np.log2(127 / max(1e-9, np.abs(layer["w1"]).max()))))
        k2 = int(np.floor(np.log2(127 / max(1e-9, np.abs(layer["w2"]).max()))))
        k1, k2 = max(k1, kh), max(k2, 0)
        w1.append(np.round(layer["w1"] * 2.0 ** k1))
        b1.append(np.round(layer["b1"] * 2.0 ** k1))
        w2.append(np.round(layer["w2"] * 2.0 ** k2))
        b2.append(np.round(layer["b2"] * 2.0 ** (k2 + kh)) + (1 << (k2 + kh - 1) if k2 + kh else 0))  # rounds
        shifts.append((k1 - kh, k2 + kh))
    as_int = lambda xs: np.ascontiguousarray(np.array(xs), dtype=np.int64)  # noqa: E731
    return Net(as_int(w1), as_int(b1), as_int(w2), as_int(b2), as_int(shifts))

"""The colours seen so far: which values each channel took after the same values of the pixel's
earlier channels, and a counter per what that says of a decision.

Why: many sources hold far fewer colours than their planes allow. A decoder that made R, G, B
from integer luma and subsampled chroma (Photo CD, video frames, JPEGs decoded by other tables
than libjpeg's) leaves the pixels on a rounded lattice: after given R and G only every second or
third B occurs. The least squares and the logistic cannot see that; a set of the (R, G, B) seen
so far learns it within the image, whatever the transform was, and repeated colours come for free.

State (`Seen`): `bits`, one 256-bit row per key (the values of the channels before this one:
none, R, or R and G), as four uint64; `counters`, one per context below (trainer.engine.models.counters).
Per decision (`context`): how many seen values lie on each side of it within WINDOW of the
prediction, how full the row is, the decision kind and the channel.
"""

from collections import namedtuple

import numba
import numpy as np

from trainer.engine.models import counters

WINDOW = 16  # values either side of the prediction that count
ROWS = 1 + 256 + 65536  # the first channel's one row, the second's per R, the third's per (R, G)
WIDE_ROWS = ROWS + 65536  # with `seen` 2, the second channel's also per (R, G - R at W)
CLASSES = 4  # of a side's count and of a row's fullness

Seen = namedtuple("Seen", "bits counters")


@numba.njit(cache=True, nogil=True)
def new(on, nodes):
    rows, contexts = (WIDE_ROWS if on == 2 else ROWS, 4 * nodes * CLASSES ** 3) if on else (1, 1)
    return Seen(np.zeros(rows * 4, dtype=np.uint64), counters.new(1, contexts))


@numba.njit(cache=True, nogil=True, inline="always")
def key(V, r0, X, c, kind):
    """This subpixel's row: the values of the channels before it at this pixel (-1: a fourth
    channel); with `kind` 2 the second channel's row also by the left neighbour's difference of the
    two, a stand-in for the local chroma that decides the lattice's next value."""
    if c == 0:
        return 0
    if c == 1:
        if kind == 2:
            return ROWS + V[r0, X, 0] * 256 + ((V[r0, X - 1, 1] - V[r0, X - 1, 0]) & 255)
        return 1 + V[r0, X, 0]
    if c == 2:
        return 257 + V[r0, X, 0] * 256 + V[r0, X, 1]
    return -1


@numba.njit(cache=True, nogil=True, inline="always")
def _popcount(w):
    w = w - ((w >> np.uint64(1)) & np.uint64(0x5555555555555555))
    w = (w & np.uint64(0x3333333333333333)) + ((w >> np.uint64(2)) & np.uint64(0x3333333333333333))
    w = (w + (w >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((w * np.uint64(0x0101010101010101)) >> np.uint64(56))


@numba.njit(cache=True, nogil=True)
def window(st, row, P):
    """The row's bits of values P - WINDOW .. P + WINDOW as one word (bit i: value P - WINDOW + i),
    and its fullness class: what every decision of this subpixel reads."""
    base, lo = row * 4, P - WINDOW
    start = max(lo, 0)
    k, s = start >> 6, start & 63
    w = st.bits[base + k] >> np.uint64(s)
    if s > 0 and k < 3:
        w |= st.bits[base + k + 1] << np.uint64(64 - s)
    w = (w << np.uint64(start - lo)) & np.uint64((1 << (2 * WINDOW + 1)) - 1)
    full = 0
    for i in range(4):
        full += _popcount(st.bits[base + i])
    return np.int64(w), 0 if full == 0 else 1 if full < 4 else 2 if full < 16 else 3


@numba.njit(cache=True, nogil=True, inline="always")
def _count(w, P, a, b):
    """Values a..b-1 set in the window word of prediction P."""
    lo, hi = max(a - P + WINDOW, 0), min(b - P + WINDOW, 2 * WINDOW + 1)
    if hi <= lo:
        return 0
    return _popcount(np.uint64(w) & (np.uint64((1 << (hi - lo)) - 1) << np.uint64(lo)))


@numba.njit(cache=True, nogil=True, inline="always")
def _cls(n):
    return 0 if n == 0 else 1 if n == 1 else 2 if n < 4 else 3


@numba.njit(cache=True, nogil=True)
def context(w, full_cls, c, node, nodes, P, a1, b1, a0, b0):
    """The counter for a decision between values a1..b1-1 (bit 1) and a0..b0-1 (a0 < 0: all
    others); `w`, `full_cls`: this subpixel's `window`."""
    n1 = _count(w, P, a1, b1)
    n0 = _count(w, P, a0, b0) if a0 >= 0 else _popcount(np.uint64(w)) - n1
    return (((min(c, 3) * nodes + node) * CLASSES + _cls(n1)) * CLASSES + _cls(n0)) * CLASSES + full_cls


@numba.njit(cache=True, nogil=True, inline="always")
def add(st, row, v):
    """Value v seen in row."""
    st.bits[row * 4 + (v >> 6)] |= np.uint64(1) << np.uint64(v & 63)

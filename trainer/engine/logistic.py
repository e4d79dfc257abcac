"""Integer squash and stretch: the logistic 1/(1 + e^-d) in 1/4096 at 33 points of d (1/256 units),
interpolated, and its integer inverse. Tables, not exp/log: the same values on every machine."""

import numba
import numpy as np

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


STRETCH = make_stretch()

"""Recursive least squares (float64): the blend's correction that minimizes the exponentially
forgotten squared error (forgetting 1 - 2**-ols_decay_shift, ridge ols_ridge/100), solved by
Cholesky every `ols_interval` pixels, one system per channel and error-energy class.

Exactness: every operation in a fixed order, compiled without fast-math (no reassociation, no fused
multiply-add contraction), so IEEE-754 fixes each result on every machine."""

from collections import namedtuple

import numba
import numpy as np

State = namedtuple("State", "R r w L z x")  # per set: sums R, r, weights w; scratch L, z; inputs x


@numba.njit(cache=True, nogil=True)
def new(sets, n):
    return State(np.zeros((sets, n, n)), np.zeros((sets, n)), np.zeros((sets, n)), np.zeros((n, n)), np.zeros(n),
                 np.zeros(n))


@numba.njit(cache=True, nogil=True)
def predict(s, ws, u, n):
    """The correction in 1/16 pixel (rounded); keeps the scaled inputs for `update`."""
    dot = 0.0
    for k in range(n):
        s.x[k] = u[k] * 0.0625
        dot += s.w[ws, k] * s.x[k]
    return np.int64(np.floor(dot * 16.0 + 0.5))


@numba.njit(cache=True, nogil=True)
def update(s, ws, n, error, decay, solve_now, ridge):
    target = error * 0.0625
    for i in range(n):
        xi = s.x[i]
        s.r[ws, i] = s.r[ws, i] * decay + xi * target
        for j in range(i + 1):
            s.R[ws, i, j] = s.R[ws, i, j] * decay + xi * s.x[j]
    if solve_now:
        _solve(s.R[ws], s.r[ws], s.w[ws], s.L, s.z, n, ridge)


@numba.njit(cache=True, nogil=True)
def _solve(R, r, w, L, z, n, ridge):
    """w = (R + ridge I)^-1 r by Cholesky; w is kept if R is not positive definite."""
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

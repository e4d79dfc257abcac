"""The inputs of the learned corrections of the blend (trainer.engine.models.lms and
least_squares): the sub-predictions' deviations from the blend, the residuals of the pixel's earlier
channels, and with `ols_wide` 5 farther neighbours (NWW, NNW, NEE, NNEE, NNWW) and the previous
channel's differences at NW, NN, WW carried over."""

import numba

from trainer.engine.models.predictors import K
from trainer.engine.tables import SH

NU = K + 2  # the LMS's inputs
NUR = NU + 8  # the wide least squares' inputs


@numba.njit(cache=True, nogil=True)
def inputs(u, preds, blend, residual, V, r0, r1, r2, X, c, wide):
    for k in range(K):
        u[k] = preds[k] - blend
    u[K] = residual[c - 1] if c >= 1 else 0
    u[K + 1] = residual[c - 2] if c >= 2 else 0
    if wide:
        u[NU] = (V[r1, X - 2, c] << SH) - blend
        u[NU + 1] = (V[r2, X - 1, c] << SH) - blend
        u[NU + 2] = (V[r1, X + 2, c] << SH) - blend
        u[NU + 3] = (V[r2, X + 2, c] << SH) - blend
        u[NU + 4] = (V[r2, X - 2, c] << SH) - blend
        if c >= 1:
            q = c - 1
            xq = V[r0, X, q]
            u[NU + 5] = ((V[r1, X - 1, c] + xq - V[r1, X - 1, q]) << SH) - blend
            u[NU + 6] = ((V[r2, X, c] + xq - V[r2, X, q]) << SH) - blend
            u[NU + 7] = ((V[r0, X - 2, c] + xq - V[r0, X - 2, q]) << SH) - blend
        else:
            u[NU + 5] = u[NU + 6] = u[NU + 7] = 0

"""The 256-way table of a logistic mixture in integer arithmetic, and its training gradient.

The float codec builds each table with sigmoid and exp, whose last bits differ between CPU kinds,
libm versions, vector widths and GPUs. Here the mixture's parameters are rounded onto grids
first (weight logits and log scales to 1/16, means to 1/16 of a pixel value) and every
nonlinearity is a lookup in a table stored with the bundle (`make_tables`), so the frequencies
are integers that every machine computes alike:

    pi_k  = EXP[16 * logit_k - max]             (integer mixture weights)
    t_k,e = round((edge_e - mean_k) * K[q_k])   (a sigmoid index, 1/1024 of a logistic unit)
    cdf_e = sum_k pi_k * SIG[t_k,e]             (exact: integers below 2**53)
    F_e   = floor(cdf_e * (2**p - 256) / cdf_total) + e,   freq_v = F_v+1 - F_v >= 1

Products like `(edge - mean) * K` are single IEEE-754 float32 operations (float32 halves the
memory traffic of the (N, K, 255) index), correctly rounded on every conforming machine; nothing
is summed in float unless the terms are integers.

`bits_and_grads` is what the online adaptation trains with: the probability of each coded value
under the same quantized mixture and its derivatives by the mixture parameters (straight through
the rounding), again from the tables alone: sigmoid' = SIG * (2**24 - SIG) / 2**48.
"""

import math

import numpy as np
import torch

LOGIT_GRID = 16  # logits and log scales in steps of 1/16
MEAN_GRID = 16  # means in steps of 1/16 of a pixel value
EXP_BITS = 16  # the likeliest component's integer weight: 2**16
EXP_SPAN = 16 * LOGIT_GRID  # components more than 16 nats below the likeliest get weight 0
LOG_SCALE_MIN, LOG_SCALE_MAX = -7 * LOGIT_GRID, 4 * LOGIT_GRID  # the float model clamps at -7
SIG_BITS = 24
SIG_GRID = 1024  # sigmoid index steps per logistic unit
SIG_SPAN = 20 * SIG_GRID  # sigmoid(+-20) rounds to 2**24 and 0
# Means and edges in 1/16 of a pixel value: value v has scaled position (2v - 255) / 255, so the
# scaled -> 1/16-value map is (x + 1) * 2040.
UNITS = 255 * MEAN_GRID / 2
EDGES = torch.arange(1, 256, dtype=torch.float32) * MEAN_GRID - MEAN_GRID / 2  # the 255 inner bin edges
LN2 = math.log(2.0)
ROWS_PER_PASS = 128  # rows of one pass of `frequencies` (speed only)
_STEPS = torch.arange(1, 256, dtype=torch.float64)


def make_tables() -> dict[str, torch.Tensor]:
    """The lookup tables (stored in the bundle: decoders read them, never recompute them)."""
    logits = np.arange(-EXP_SPAN, 1) / LOGIT_GRID
    scales = np.arange(LOG_SCALE_MIN, LOG_SCALE_MAX + 1) / LOGIT_GRID
    z = np.arange(-SIG_SPAN, SIG_SPAN + 1) / SIG_GRID
    return {
        "mixture.exp": torch.from_numpy(np.round(np.exp(logits) * 2 ** EXP_BITS)).int(),
        # sigmoid-index steps per 1/16 pixel value: SIG_GRID / scale, scale in 1/16-value units
        "mixture.inverse_scale": torch.from_numpy(SIG_GRID * np.exp(-scales) / UNITS).float(),
        "mixture.sigmoid": torch.from_numpy(np.round(2 ** SIG_BITS / (1 + np.exp(-z)))).int(),
    }


class IntegerMixture:
    """Frequencies and training gradients of (N, K) mixture parameters, from the bundle's tables."""

    def __init__(self, tables: dict[str, torch.Tensor]):
        self.exp = tables["mixture.exp"].double()
        self.inverse_scale = tables["mixture.inverse_scale"].float()
        self.sigmoid = tables["mixture.sigmoid"].double()

    def _grid(self, logits, means, log_scales):
        """Integer weights pi (N, K), sigmoid-index slopes k (N, K), means in 1/16 values (N, K;
        float32, exact), and which log scales sat inside their clamp (where gradients flow)."""
        q = torch.round(logits * LOGIT_GRID)
        q = (q - q.amax(1, keepdim=True)).clamp(min=-EXP_SPAN)
        pi = lookup(self.exp, q + EXP_SPAN)
        s = torch.round(log_scales * LOGIT_GRID)
        inside = (s >= LOG_SCALE_MIN) & (s <= LOG_SCALE_MAX)
        k = lookup(self.inverse_scale, s.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX) - LOG_SCALE_MIN)
        m = torch.round((means + 1.0) * UNITS).clamp(-64 * MEAN_GRID, 320 * MEAN_GRID).float()
        return pi, k, m, inside

    def _index(self, edges, k, m):
        """Sigmoid-table indices (N, K, E), float32 integers, of edges (E,) or (N, 1, E) in 1/16 values."""
        return torch.round((edges - m[..., None]) * k[..., None]).clamp_(-SIG_SPAN, SIG_SPAN).add_(SIG_SPAN)

    def frequencies(self, logits, means, log_scales, precision: int) -> np.ndarray:
        """(N, 256) int64 frequencies >= 1 summing to 2**precision."""
        pi, k, m, _ = self._grid(logits, means, log_scales)
        total = ordered_sum(pi)[:, None] * 2.0 ** SIG_BITS
        room = float((1 << precision) - 256)
        out = torch.empty(len(pi), 256, dtype=torch.int64)
        # Rows in chunks: each chunk's (rows, K, 255) index and sigmoid values stay in the CPU's cache
        # (the encoder's 512-row blocks would not); rows are independent, so nothing changes.
        for a in range(0, len(pi), ROWS_PER_PASS):
            b = min(a + ROWS_PER_PASS, len(pi))
            sig = lookup(self.sigmoid, self._index(EDGES, k[a:b], m[a:b]))  # (rows, K, 255)
            cdf = torch.bmm(pi[a:b, None], sig)[:, 0]  # exact: integer products and sums below 2**45
            # F_e = floor(cdf_e * room / total) + e: two correctly rounded operations, so every machine
            # gets the same F, nondecreasing in e, F_0 = 0 and F_256 = 2**precision: each freq >= 1
            inner = cdf.mul_(room).div_(total[a:b]).floor_().add_(_STEPS).long()
            out[a:b, 0] = inner[:, 0]
            torch.sub(inner[:, 1:], inner[:, :-1], out=out[a:b, 1:255])
            out[a:b, 255] = (1 << precision) - inner[:, -1]
        return out.numpy()

    def bits_and_grads(self, logits, means, log_scales, target: torch.Tensor):
        """Bits of each target value (N,) under the quantized mixture, and d(bits)/d(logits, means,
        log scales), each (N, K), straight through the rounding."""
        pi, k, m, inside = self._grid(logits, means, log_scales)
        v = target.float()[:, None, None]
        edges = torch.cat([v * MEAN_GRID - MEAN_GRID / 2, v * MEAN_GRID + MEAN_GRID / 2], 2)  # (N, 1, 2)
        t = self._index(edges, k, m)
        t[:, :, 0] = torch.where(target[:, None] == 0, 0, t[:, :, 0])  # value 0: the whole left tail
        t[:, :, 1] = torch.where(target[:, None] == 255, 2 * SIG_SPAN, t[:, :, 1])  # 255: the right tail
        sig = lookup(self.sigmoid, t)  # (N, K, 2)
        unit = float(2 ** SIG_BITS)
        mass = (sig[..., 1] - sig[..., 0]) / unit  # each component's probability of the value (exact)
        total = ordered_sum(pi)[:, None]
        weight = pi / total
        # floored at the tables' resolution: below it the mass has underflowed while the slopes have
        # not, and 1 / p would blow the gradient up (the float model stays finite there, in log space)
        p = (ordered_sum(pi * (sig[..., 1] - sig[..., 0])) / (total[:, 0] * unit)).clamp(min=2.0 ** -SIG_BITS)
        slope = sig * (unit - sig) / (unit * unit)  # sigmoid' at both edges (exact)
        z = (t - SIG_SPAN).double() / SIG_GRID
        inverse = k.double() * (UNITS / SIG_GRID)  # 1 / scale in scaled units, dz/d(mean)
        d_mean = -inverse * (slope[..., 1] - slope[..., 0])
        d_log_scale = -(z[..., 1] * slope[..., 1] - z[..., 0] * slope[..., 0])
        factor = -1.0 / (p * LN2)[:, None]  # d(-log2 p)/dp
        g_logits = factor * (weight * (mass - p[:, None]))
        g_means = factor * (weight * d_mean)
        g_log_scales = torch.where(inside, factor * (weight * d_log_scale), 0.0)
        return -torch.log2(p), g_logits, g_means, g_log_scales


def lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for an index of any shape, integer-valued in any dtype. Float indices become
    int32 (exact below 2**31): AVX2 has no vector float -> int64 conversion, so int64 indices cost
    far more; index_select beats advanced indexing; the values are the same."""
    if index.is_floating_point():
        index = index.int()
    return table.index_select(0, index.flatten()).view(index.shape)


def ordered_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the last dimension in a fixed order (left to right): float sums of non-integers
    must not depend on how a kernel vectorizes its reduction."""
    out = x[..., 0]
    for i in range(1, x.shape[-1]):
        out = out + x[..., i]
    return out

"""256-way log-probabilities -> the integer frequency tables every range coder here reads.

Every symbol gets at least 1 and each row sums to exactly 2**precision; encoder and decoder call
this on bit-identical log-probabilities, so they get bit-identical tables.
"""

import numpy as np
import torch


def quantize(log_probs: torch.Tensor, precision: int) -> np.ndarray:
    """(N, 256) float log-probabilities -> (N, 256) int64 frequencies >= 1 summing to 2**precision."""
    total = 1 << precision
    probs = torch.exp(log_probs.double()).numpy()
    freqs = np.floor(probs * (total - 256)).astype(np.int64) + 1  # sum <= total: floors never round up
    rows = np.arange(len(freqs))
    freqs[rows, freqs.argmax(1)] += total - freqs.sum(1)  # the remainder goes to the likeliest symbol
    return freqs

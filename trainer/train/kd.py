"""The distillation term both students share (LM: trainer.train.distill; context: trainer.train.context)."""

import torch
import torch.nn.functional as F

from trainer.units import LN2


def kl_bits(teacher_log_probs: torch.Tensor, student_log_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher_T || student_T) in bits for each row of (N, 256) log-probabilities."""
    t = F.log_softmax(teacher_log_probs.float() / temperature, dim=-1)
    s = F.log_softmax(student_log_probs.float() / temperature, dim=-1)
    return (t.exp() * (t - s)).sum(-1) / LN2

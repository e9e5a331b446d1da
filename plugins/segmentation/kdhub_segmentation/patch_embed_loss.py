"""The patch-embedding loss of TransKD: sum_i gamma_i * MSE(E_hat_i, E_T_i), gamma = (0.1, 0.1, 0.5, 1.0)."""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class PatchEmbeddingLoss(nn.Module):
    """``forward(aligned, teacher)`` over lists of [B, N_i, C_T_i] token sequences, one weight per stage."""

    def __init__(self, weights: Sequence[float] = (0.1, 0.1, 0.5, 1.0)):
        super().__init__()
        self.weights = tuple(float(w) for w in weights)

    def forward(self, aligned: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
        if not len(aligned) == len(teacher) == len(self.weights):
            raise ValueError(f"patch-embedding loss: {len(self.weights)} weights for {len(aligned)} student and "
                             f"{len(teacher)} teacher embeddings")
        for a, t in zip(aligned, teacher):
            if a.shape != t.shape:
                raise ValueError(f"patch-embedding loss compares tokens of the same shape, got {tuple(a.shape)} "
                                 f"and {tuple(t.shape)}")
        return sum(w * F.mse_loss(a, t) for w, a, t in zip(self.weights, aligned, teacher))

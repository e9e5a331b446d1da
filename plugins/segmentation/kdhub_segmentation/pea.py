"""PEA, Patch Embedding Alignment (TransKD): a token-wise linear map from the student's patch-embedding
width to the teacher's, E_hat_i = Linear(C_S_i -> C_T_i)(E_S_i) on [B, N_i, C] token sequences."""
from __future__ import annotations

from torch import nn


class PatchEmbeddingAlignment(nn.Linear):
    """``forward(E_S)`` with E_S of shape [B, N, C_S] returns [B, N, C_T]."""

    def __init__(self, student_channels: int, teacher_channels: int):
        super().__init__(student_channels, teacher_channels)

"""HCL, the hierarchical context loss TransKD applies to CSF outputs (from ReviewKD).

Per stage: [MSE(f_S, f_T) + sum over k = 1, 2, 3 with pooled sizes l_k = 4, 2, 1 of
2^-k * MSE(AvgPool_(l_k)(f_S), AvgPool_(l_k)(f_T))] / (1 + sum of the 2^-k used); levels not smaller
than the feature map are skipped. The total is the sum over stages.
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


def hcl_stage(student: Tensor, teacher: Tensor, levels: Sequence[int] = (4, 2, 1)) -> Tensor:
    """HCL of one stage's [B, C, H, W] maps (same shape)."""
    if student.shape != teacher.shape:
        raise ValueError(f"HCL compares maps of the same shape, got student {tuple(student.shape)} and teacher "
                         f"{tuple(teacher.shape)}")
    loss = F.mse_loss(student, teacher)
    weight, total = 1.0, 1.0
    for size in levels:
        if size >= student.shape[-2]:
            continue
        weight /= 2.0
        loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(student, size), F.adaptive_avg_pool2d(teacher, size))
        total += weight
    return loss / total


class HierarchicalContextLoss(nn.Module):
    """Sum of :func:`hcl_stage` over stages; ``forward(students, teachers)`` takes lists of maps."""

    def __init__(self, levels: Sequence[int] = (4, 2, 1)):
        super().__init__()
        self.levels = tuple(int(x) for x in levels)

    def forward(self, students: Sequence[Tensor], teachers: Sequence[Tensor]) -> Tensor:
        return sum(hcl_stage(s, t, self.levels) for s, t in zip(students, teachers))

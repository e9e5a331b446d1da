"""GLNN (Zhang et al., ICLR 2022): distil a GNN's soft labels into an MLP.

L = lambda * CE(student, labels) over labelled nodes + (1 - lambda) * KL(p_T || p_S) over the
distillation node set, with the teacher's soft labels computed once and cached.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
import torch.nn.functional as F

from kdhub import Algorithm, KDLoss


def labelled_ce(logits: torch.Tensor, y: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """Cross entropy over the labelled nodes of a batch (0 when the batch has none)."""
    if labelled.any():
        return F.cross_entropy(logits[labelled], y[labelled])
    return logits.sum() * 0.0


class GLNN(Algorithm):
    """Student MLP trained on cached teacher soft labels; ``lam`` balances hard and soft labels."""

    def __init__(self, student: torch.nn.Module, lam: float = 0.0, temperature: float = 1.0):
        super().__init__(student)
        self.lam = float(lam)
        self.kd = KDLoss(temperature)

    @classmethod
    def from_config(cls, student: torch.nn.Module, distill: Dict[str, Any]) -> "GLNN":
        """From the graph config's ``distill`` section (``lambda``, ``temperature``)."""
        return cls(student, distill["lambda"], distill["temperature"])

    def loss(self, x: torch.Tensor, y: torch.Tensor, labelled: torch.Tensor, teacher_logits: torch.Tensor,
             **_: torch.Tensor) -> Dict[str, torch.Tensor]:
        s = self.student(x)
        return {"loss_ce": self.lam * labelled_ce(s, y, labelled),
                "loss_kd": (1.0 - self.lam) * self.kd(s, teacher_logits)}

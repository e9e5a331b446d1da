"""GLNN (Zhang et al., ICLR 2022): distil a GNN's soft labels into an MLP.

L = lambda * CE(student, labels) over labelled nodes + (1 - lambda) * KL(p_T || p_S) over the
distillation node set, with the teacher's soft labels computed once and cached.

The paper writes one loss. The authors' released code (``train_and_eval.py``, ``train_mini_batch``) instead
takes two passes per epoch with the same Adam optimiser: a CE pass over the labelled nodes, weighted by
lambda, then a KL pass over the distillation nodes, weighted by 1 - lambda, each in mini-batches with their
own optimiser steps. With its default lambda = 0 the CE pass still steps Adam (weight decay and the moments
move). ``part`` selects one of the two passes for that schedule (``student.schedule: released``).
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
             part: str = "both", **_: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Both weighted terms, or with ``part`` 'ce' / 'kd' only that one (the released two-pass schedule)."""
        s = self.student(x)
        out = {}
        if part in ("both", "ce"):
            out["loss_ce"] = self.lam * labelled_ce(s, y, labelled)
        if part in ("both", "kd"):
            out["loss_kd"] = (1.0 - self.lam) * self.kd(s, teacher_logits)
        return out

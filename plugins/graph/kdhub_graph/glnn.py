"""GLNN (Zhang et al., ICLR 2022): distil a GNN's soft labels into an MLP.

L = lambda * CE(student, labels) over labelled nodes + (1 - lambda) * KL(p_T || p_S) over the
distillation node set, with the teacher's soft labels computed once and cached.

The paper writes one loss. The authors' released code (``train_and_eval.py``, ``train_mini_batch``) instead
takes two passes per epoch with the same Adam optimiser: a CE pass over the labelled nodes, weighted by
lambda, then a KL pass over the distillation nodes, weighted by 1 - lambda, each in mini-batches with their
own optimiser steps. With its default lambda = 0 the CE pass still steps Adam (weight decay and the moments
move). ``part`` selects one of the two passes for that schedule (``student.schedule: released``).

Cost: the soft labels are fixed for the whole of student training, so :meth:`GLNN.prepare_teacher` turns the
cached logits once into what the KL needs per node, the teacher's probabilities at temperature T and their
entropy. Per step the KL is then KL(p_T || p_S) = CE(p_T, p_S) - H(p_T): one soft-target cross entropy (the
same log-softmax as the hard-label CE it replaces, :func:`log_softmax`) and a gathered constant, instead of a
second log-softmax, an exp and a log of the teacher's side every step.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F

from kdhub import Algorithm, KDLoss

from .methods import own_settings


#: below this many classes, a CPU log-softmax is taken over the first dimension of the transposed logits
FEW_CLASSES = 16


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``F.log_softmax(logits, -1)`` of ``[rows, classes]`` logits, the same function computed faster on CPU.

    PyTorch's CPU kernel over the last dimension vectorises along that dimension, so with fewer classes than one
    vector holds (16 floats; Cora has 7, the CSBM benchmarks 10) it runs about 3x slower, forward and backward,
    than the same reduction over the first dimension of the transposed tensor, which vectorises across rows
    (measured in ``docs/dev-notes/graph-scale.md``). The two differ only in rounding (last bits)."""
    if logits.device.type == "cpu" and logits.dim() == 2 and logits.size(1) < FEW_CLASSES:
        return F.log_softmax(logits.t(), 0).t()
    return F.log_softmax(logits, -1)


def labelled_ce(logits: torch.Tensor, y: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """Cross entropy over the labelled nodes of a batch (0 when the batch has none)."""
    if labelled.any():
        return F.nll_loss(log_softmax(logits[labelled]), y[labelled])
    return logits.sum() * 0.0


def soft_ce(logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Cross entropy of ``logits`` against target probabilities, averaged over the rows: what
    ``F.cross_entropy(logits, probs)`` computes, through :func:`log_softmax`."""
    return -(probs * log_softmax(logits)).sum(1).mean()


class GLNN(Algorithm):
    """Student MLP trained on cached teacher soft labels; ``lam`` balances hard and soft labels."""

    def __init__(self, student: torch.nn.Module, lam: float = 0.0, temperature: float = 1.0):
        super().__init__(student)
        self.lam = float(lam)
        self.kd = KDLoss(temperature)

    @classmethod
    def from_config(cls, student: torch.nn.Module, distill: Dict[str, Any]) -> "GLNN":
        """From the graph config's ``distill`` section: ``lambda`` and ``temperature``, each overridden by
        ``distill.glnn.<key>`` where given."""
        own = own_settings(distill, "glnn", ("lambda", "temperature"))
        return cls(student, own["lambda"], own["temperature"])

    def prepare_teacher(self, teacher_logits: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Per-node rows the task hands to :meth:`loss` in place of the cached logits, computed once:
        ``teacher_probs`` = softmax(logits / T) and ``teacher_entropy`` = H(teacher_probs)."""
        log_p = F.log_softmax(teacher_logits.float() / self.kd.temperature, dim=1)
        probs = log_p.exp()
        return {"teacher_probs": probs, "teacher_entropy": -(probs * log_p).sum(dim=1)}

    def soft_kl(self, s: torch.Tensor, probs: torch.Tensor, entropy: torch.Tensor) -> torch.Tensor:
        """KL(p_T || softmax(s / T)) * T^2 averaged over the rows, from prepared teacher rows."""
        t = self.kd.temperature
        if t == 1.0:  # GLNN's setting: no scaling of the logits (their forward and backward) at all
            return soft_ce(s, probs) - entropy.mean()
        return (soft_ce(s / t, probs) - entropy.mean()) * t * t

    def loss(self, x: torch.Tensor, y: torch.Tensor, labelled: torch.Tensor,
             teacher_logits: Optional[torch.Tensor] = None, part: str = "both",
             teacher_probs: Optional[torch.Tensor] = None, teacher_entropy: Optional[torch.Tensor] = None,
             **_: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Both weighted terms, or with ``part`` 'ce' / 'kd' only that one (the released two-pass schedule).
        The teacher comes as ``teacher_logits`` or as :meth:`prepare_teacher`'s rows (the task's path)."""
        s = self.student(x)
        out = {}
        if part == "ce" or (part == "both" and self.lam):
            out["loss_ce"] = self.lam * labelled_ce(s, y, labelled)
        elif part == "both":  # lambda 0 (GLNN's default): a zero term, logged without computing the CE
            out["loss_ce"] = s.new_zeros(())
        if part in ("both", "kd"):
            kl = self.kd(s, teacher_logits) if teacher_probs is None else \
                self.soft_kl(s, teacher_probs, teacher_entropy)
            out["loss_kd"] = (1.0 - self.lam) * kl
        return out

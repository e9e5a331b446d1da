"""FF-G2M (Wu et al., AAAI 2023): full-frequency GNN-to-MLP distillation.

Besides hard labels, the student matches the teacher on
* low frequencies: each node's prediction is pulled to its neighbours' (and its own) teacher predictions,
  L_LFD = mean over edges (i, j) with self-loops of KL(softmax(z_j) || softmax(s_i));
* high frequencies: the differences between neighbours, L_HFD = mean over edges (i, j) without self-loops of
  KL(softmax(|z_i - z_j| / tau) || softmax(|s_i - s_j| / tau)).
L = lambda * CE + (1 - lambda) * (L_LFD + L_HFD).

Both terms gather rows per edge with ``index_select`` (:func:`~kdhub_graph.sampler.rows`) and take their
log-softmaxes with :func:`~kdhub_graph.glnn.log_softmax`: over a neighbourhood's tens of thousands of edges these
dominate the step, and the framework's defaults for both are 2-4x slower on CPU for the same values.
"""
from __future__ import annotations

from typing import Any, Dict

import torch

from kdhub import Algorithm

from .glnn import labelled_ce, log_softmax
from .methods import own_settings
from .sampler import rows


def _kl_rows(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row from log-probabilities."""
    return (p_log.exp() * (p_log - q_log)).sum(-1)


def low_frequency_loss(s: torch.Tensor, z: torch.Tensor, edge_index: torch.Tensor, num_targets: int) -> torch.Tensor:
    """L_LFD over edges (j -> i) plus self-loops of the first ``num_targets`` nodes."""
    j, i = edge_index
    loops = torch.arange(num_targets, device=s.device)
    j, i = torch.cat([j, loops]), torch.cat([i, loops])
    return _kl_rows(log_softmax(rows(z, j)), log_softmax(rows(s, i))).mean()


def high_frequency_loss(s: torch.Tensor, z: torch.Tensor, edge_index: torch.Tensor, tau: float) -> torch.Tensor:
    """L_HFD over edges (j -> i), self-loops excluded."""
    j, i = edge_index
    keep = j != i
    j, i = j[keep], i[keep]
    if len(i) == 0:
        return s.sum() * 0.0
    t = log_softmax((rows(z, i) - rows(z, j)).abs() / tau)
    return _kl_rows(t, log_softmax((rows(s, i) - rows(s, j)).abs() / tau)).mean()


class FFG2M(Algorithm):
    """Student MLP distilled with low- and high-frequency terms over the observed graph's edges."""

    needs_graph = True  # batches hold the targets' one-hop neighbourhood and its edges

    def __init__(self, student: torch.nn.Module, lam: float = 0.4, tau: float = 1.5):
        super().__init__(student)
        self.lam, self.tau = float(lam), float(tau)

    @classmethod
    def from_config(cls, student: torch.nn.Module, distill: Dict[str, Any]) -> "FFG2M":
        """From the graph config's ``distill`` section: ``lambda`` and ``tau``, each overridden by
        ``distill.ffg2m.<key>`` where given (FF-G2M has no temperature: its terms use ``tau``)."""
        own = own_settings(distill, "ffg2m", ("lambda", "tau"))
        return cls(student, own["lambda"], own["tau"])

    def loss(self, x: torch.Tensor, y: torch.Tensor, labelled: torch.Tensor, teacher_logits: torch.Tensor,
             edge_index: torch.Tensor, num_targets: int, **_: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``x``, ``teacher_logits``: the batch's target nodes first, then their neighbours;
        ``edge_index`` (local ids) runs from neighbour to target; ``y``/``labelled`` cover the targets."""
        s = self.student(x)
        w = 1.0 - self.lam
        return {"loss_ce": self.lam * labelled_ce(s[:num_targets], y, labelled),
                "loss_lfd": w * low_frequency_loss(s, teacher_logits, edge_index, num_targets),
                "loss_hfd": w * high_frequency_loss(s, teacher_logits, edge_index, self.tau)}

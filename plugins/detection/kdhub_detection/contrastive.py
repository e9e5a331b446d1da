"""DETRDistill's contrastive term on matched decoder queries, as in the authors' released code.

The paper does not describe this term; the authors' released config switches it on (weight 0.2, temperature
0.07, every decoder layer), so kdhub follows the released code and keeps it switchable
(``DETRDistill(contrastive_weight=0)``).

At one decoder layer, the student's and the teacher's decoder hidden states of the pairs that the logits
distillation matched (student query i <-> teacher query pi(i), Hungarian matching on the teacher's predictions)
are each passed through a trainable projection (one linear layer to ``hidden`` dims, then a two-layer MLP with
batch norm), L2-normalised, and compared by an InfoNCE loss over the whole batch:

    logits[i, j] = <t_i, s_j> / temperature        (t_i: teacher pair i, s_j: student pair j, all pairs)
    loss = mean_i CE(softmax_j logits[i, :], target j = i)

so the teacher query of a pair is the anchor, the student query of the same pair is its positive and the
student queries of every other pair in the batch (other queries of the same image and all queries of the other
images) are its negatives. The released code calls its head "MoCo", but it keeps no queue of past keys and no
momentum encoder: the negatives are in-batch only, and both projections are trained by the loss. The teacher's
hidden states themselves carry no gradient.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def info_nce(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """InfoNCE of ``n`` aligned pairs ([n, d] each): row i (teacher i) against every student embedding, the
    positive being student i; both sides are L2-normalised first; mean over rows."""
    s = F.normalize(student, dim=1)
    t = F.normalize(teacher, dim=1)
    logits = t @ s.t() / temperature
    return F.cross_entropy(logits, torch.arange(len(t), device=t.device))


def projection(in_dims: int, hidden: int) -> nn.Sequential:
    """The released head's projection: a linear map to ``hidden`` dims, then Linear-BN-ReLU-Linear."""
    return nn.Sequential(nn.Linear(in_dims, hidden), nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, hidden))


class QueryContrast(nn.Module):
    """The contrastive term of one decoder layer on matched query pairs (student [n, Ds], teacher [n, Dt]).

    ``hidden`` is the projection width (512 in the released code); ``project=False`` compares the hidden
    states directly (no trainable heads)."""

    def __init__(self, student_dims: int, teacher_dims: int, hidden: int = 512, temperature: float = 0.07,
                 project: bool = True):
        super().__init__()
        self.temperature = float(temperature)
        self.student_proj = projection(student_dims, hidden) if project else nn.Identity()
        self.teacher_proj = projection(teacher_dims, hidden) if project else nn.Identity()

    def forward(self, s_queries: Tensor, t_queries: Tensor) -> Tensor:
        if len(s_queries) < 2:  # one pair has no negative (and batch norm needs two rows)
            return s_queries.sum() * 0.0
        return info_nce(self.student_proj(s_queries), self.teacher_proj(t_queries.detach()), self.temperature)

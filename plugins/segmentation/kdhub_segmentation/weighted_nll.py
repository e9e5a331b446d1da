"""Class-weighted NLL of the log-softmax, averaged over the weights of the labelled pixels.

The TransKD authors train with ``NLLLoss(weight)`` on ``log_softmax`` of the logits: with per-class weights
w and labels y_i over the pixels that are not ignored,

    L = sum_i w[y_i] * (-log softmax(z_i)[y_i]) / sum_i w[y_i].

Softmax cross-entropy is this same NLL of the log-softmax, and mmseg 1.2.2's ``CrossEntropyLoss(class_weight=
...)`` also divides by the sum of the pixels' weights, but it looks every label up in the weight vector before
masking the ignored ones: a batch with a pixel labelled 255 (Cityscapes' ignore label) stops with an
IndexError. This loss masks first; on batches without ignored pixels the two agree (tested).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class ClassWeightedNLLLoss(nn.Module):
    """``forward(logits [B, C, H, W], labels [B, H, W])``: the weighted mean above, times ``loss_weight``.

    Pixels labelled ``ignore_index`` (the decode head passes its own) count in neither sum; a class of
    weight 0 is ignored the same way (the authors' 20th 'void' class). A batch with no weighted pixel gives
    0 (PyTorch's mean would be 0 / 0). Named ``loss_ce`` in the logs, like mmseg's cross-entropy.
    """

    def __init__(self, class_weight: Sequence[float], loss_weight: float = 1.0, loss_name: str = "loss_ce"):
        super().__init__()
        self.class_weight = [float(w) for w in class_weight]
        self.loss_weight = float(loss_weight)
        self._loss_name = loss_name

    def forward(self, cls_score: Tensor, label: Tensor, weight: Optional[Tensor] = None, ignore_index: int = 255,
                **kwargs) -> Tensor:
        if cls_score.shape[1] != len(self.class_weight):
            raise ValueError(f"ClassWeightedNLLLoss: {len(self.class_weight)} class weights for "
                             f"{cls_score.shape[1]} classes; give one weight per output class")
        if weight is not None:
            raise ValueError("ClassWeightedNLLLoss: per-pixel weights (a pixel sampler) are not supported")
        w = cls_score.new_tensor(self.class_weight)
        valid = label != ignore_index
        if not bool((w[label[valid]] > 0).any()):
            return cls_score.sum() * 0.0
        loss = F.nll_loss(F.log_softmax(cls_score, dim=1), label, weight=w, ignore_index=ignore_index)
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        return self._loss_name

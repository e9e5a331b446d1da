"""DETRDistill's target-aware feature mask and the masked feature loss.

From one teacher decoder layer: the top-K entries of the flattened query x class sigmoid scores; quality
``c_k = score_k * max IoU(box_k, ground truth)`` (the score alone when an image has no ground truth);
``q_k`` = the teacher's decoder hidden state of that query. For each feature level F_T (neck output):
``Psi(x) = max(0.01, sum_k c_k <norm(q_k), norm(F_T(x))>)``, then ``Psi /= max Psi`` (per image and level).
The loss is ``sum_levels mean((Psi * F_T - Psi * adapt(F_S))^2)``.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from torch import Tensor


@torch.no_grad()
def query_quality(t_logits: Tensor, t_boxes: Tensor, gt_boxes: Tensor, meta: dict, top_k: int = 100):
    """Query indices and qualities c_k of one image. ``t_logits`` [Q, C], ``t_boxes`` [Q, 4] normalised
    cxcywh, ``gt_boxes`` [G, 4] xyxy pixels. Returns (query index [K], c [K])."""
    scores = t_logits.sigmoid().flatten()
    k = min(top_k, scores.numel())
    top, flat = scores.topk(k)
    query = torch.div(flat, t_logits.size(1), rounding_mode="floor")
    if len(gt_boxes) == 0:
        return query, top
    h, w = meta["img_shape"][:2]
    boxes = bbox_cxcywh_to_xyxy(t_boxes[query]) * t_boxes.new_tensor([w, h, w, h])
    iou = bbox_overlaps(boxes, gt_boxes.to(boxes)).max(dim=1).values
    return query, top * iou


@torch.no_grad()
def target_aware_mask(queries: Tensor, quality: Tensor, feat: Tensor, floor: float = 0.01) -> Tensor:
    """Psi for one image and level: ``queries`` [K, D] hidden states, ``quality`` [K], ``feat`` [D, H, W]."""
    q = F.normalize(queries, dim=1)
    f = F.normalize(feat.flatten(1), dim=0)  # [D, HW]
    psi = (quality[:, None] * (q @ f)).sum(dim=0).clamp_min(floor)
    psi = psi / psi.max()
    return psi.view(1, *feat.shape[1:])


def masked_feature_loss(s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], masks: List[List[Tensor]]) -> Tensor:
    """``sum_levels mean((Psi F_T - Psi F_S)^2)``; ``masks[level][image]`` is [1, H, W]."""
    total = s_feats[0].new_zeros(())
    for s, t, level_masks in zip(s_feats, t_feats, masks):
        psi = torch.stack(level_masks)  # [B, 1, H, W]
        total = total + ((psi * t - psi * s) ** 2).mean()
    return total

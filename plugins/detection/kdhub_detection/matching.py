"""DETRDistill's Hungarian-matching logits distillation (Chang et al., ICCV 2023).

Teacher predictions of one decoder layer, all queries, no score threshold, are pseudo ground truth: soft
class targets ``p_T = sigmoid(z_T)`` and boxes ``b_T``. Student queries are matched one-to-one to teacher
queries by mmdet's HungarianAssigner on ``1 * sum_c BCE(z_S, p_T) + 5 * L1(b_S, b_T) + 2 * (-GIoU)``
(CrossEntropyLossCost averages over the C classes, so its weight is C times the class weight), and the same
three terms are the loss on the matched pairs, averaged over pairs.

Teacher boxes as pseudo targets: the paper does not say; the authors' released code clamps them to the image
before matching and before they serve as targets, and kdhub follows it (:func:`clamp_to_image`, switched by
``DETRDistill(clamp_teacher_boxes=...)``).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.task_modules.assigners import HungarianAssigner
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps, bbox_xyxy_to_cxcywh
from mmengine.structures import InstanceData
from torch import Tensor


def _factor(meta: dict, like: Tensor) -> Tensor:
    h, w = meta["img_shape"][:2]
    return like.new_tensor([w, h, w, h])


def clamp_to_image(boxes: Tensor) -> Tensor:
    """Normalised cxcywh boxes [..., 4] cut to the image: to corners, each corner clamped to [0, 1] (the image
    is [0, W] x [0, H] in pixels), back to cxcywh. A box inside the image is unchanged."""
    return bbox_xyxy_to_cxcywh(bbox_cxcywh_to_xyxy(boxes).clamp(0.0, 1.0))


class TeacherMatcher:
    """Hungarian matching of student queries to teacher queries (one image, one decoder layer)."""

    def __init__(self, num_classes: int, cls_weight: float = 1.0, l1_weight: float = 5.0, giou_weight: float = 2.0):
        self.num_classes = num_classes
        self.assigner = HungarianAssigner(match_costs=[
            dict(type="CrossEntropyLossCost", use_sigmoid=True, weight=cls_weight * num_classes),
            dict(type="BBoxL1Cost", weight=l1_weight, box_format="xywh"),
            dict(type="IoUCost", iou_mode="giou", weight=giou_weight),
        ])

    @torch.no_grad()
    def match(self, s_logits: Tensor, s_boxes: Tensor, t_logits: Tensor, t_boxes: Tensor,
              meta: dict) -> Tuple[Tensor, Tensor]:
        """Indices (student, teacher) of matched pairs. Boxes: [Q, 4] normalised cxcywh; logits [Q, C]."""
        factor = _factor(meta, s_boxes)
        t_probs = t_logits.sigmoid()
        pred = InstanceData(bboxes=bbox_cxcywh_to_xyxy(s_boxes) * factor, masks=s_logits.detach())
        target = InstanceData(bboxes=bbox_cxcywh_to_xyxy(t_boxes) * factor, masks=t_probs,
                              labels=t_probs.argmax(dim=1))
        result = self.assigner.assign(pred, target, img_meta=meta)
        s_idx = torch.nonzero(result.gt_inds > 0, as_tuple=False).squeeze(1)
        return s_idx, result.gt_inds[s_idx] - 1


def giou_loss(a_xyxy: Tensor, b_xyxy: Tensor) -> Tensor:
    return 1.0 - bbox_overlaps(a_xyxy, b_xyxy, mode="giou", is_aligned=True)


class LogitsDistillation:
    """The matched-pair loss of one decoder layer over a batch: class BCE to soft targets (summed over
    classes), L1 on normalised cxcywh, GIoU; each averaged over all matched pairs of the batch."""

    def __init__(self, matcher: TeacherMatcher, cls_weight: float = 1.0, l1_weight: float = 5.0,
                 giou_weight: float = 2.0):
        self.matcher = matcher
        self.weights = (cls_weight, l1_weight, giou_weight)

    def match(self, s_logits: Tensor, s_boxes: Tensor, t_logits: Tensor, t_boxes: Tensor,
              metas: List[dict]) -> List[Tuple[Tensor, Tensor]]:
        """Per image of one layer: (student indices, teacher indices) of the matched pairs."""
        return [self.matcher.match(s_logits[b], s_boxes[b], t_logits[b], t_boxes[b], meta)
                for b, meta in enumerate(metas)]

    def __call__(self, s_logits: Tensor, s_boxes: Tensor, t_logits: Tensor, t_boxes: Tensor,
                 metas: List[dict], matches: Optional[List[Tuple[Tensor, Tensor]]] = None) -> Dict[str, Tensor]:
        """Inputs [B, Q, C] / [B, Q, 4] of one layer; ``matches`` from :meth:`match` (computed here when not
        given). Returns ``cls``, ``l1`` and ``giou`` (weighted)."""
        if matches is None:
            matches = self.match(s_logits, s_boxes, t_logits, t_boxes, metas)
        cls_terms, l1_terms, giou_terms = [], [], []
        for b, meta in enumerate(metas):
            s_idx, t_idx = matches[b]
            factor = _factor(meta, s_boxes)
            sb, tb = s_boxes[b, s_idx], t_boxes[b, t_idx]
            cls_terms.append(F.binary_cross_entropy_with_logits(
                s_logits[b, s_idx], t_logits[b, t_idx].sigmoid(), reduction="none").sum(dim=1))
            l1_terms.append((sb - tb).abs().sum(dim=1))
            giou_terms.append(giou_loss(bbox_cxcywh_to_xyxy(sb) * factor, bbox_cxcywh_to_xyxy(tb) * factor))
        n = max(1, sum(len(t) for t in cls_terms))
        w_cls, w_l1, w_giou = self.weights
        return {"cls": w_cls * torch.cat(cls_terms).sum() / n, "l1": w_l1 * torch.cat(l1_terms).sum() / n,
                "giou": w_giou * torch.cat(giou_terms).sum() / n}

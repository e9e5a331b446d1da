"""GID's General Instance Selection Module (GISM, Dai et al. 2021).

Per image, over the positions (anchors or points) teacher and student share:
GI score ``P_r = max_c |P_T[r, c] - P_S[r, c]|`` (class probabilities), GI box = the teacher's decoded box
where the teacher's top score is higher than the student's, else the student's; NMS on GI boxes (the ``nms_pre`` highest scores) at IoU
``iou_threshold`` (0.3) and the ``top_k`` (10) highest GI scores are kept. Ground truth is not used: the
selected instances are where the two detectors disagree most.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from mmcv.ops import nms
from mmengine.structures import InstanceData
from torch import Tensor


@dataclass
class GISM:
    iou_threshold: float = 0.3
    top_k: int = 10
    min_score: float = 0.0
    nms_pre: int = 1000  # only the highest GI scores enter NMS (as mmdet's heads do before their NMS)

    @torch.no_grad()
    def select(self, t_probs: Tensor, s_probs: Tensor, t_boxes: Tensor, s_boxes: Tensor) -> InstanceData:
        """General instances of one image.

        ``t_probs``/``s_probs``: [N, C] class probabilities; ``t_boxes``/``s_boxes``: [N, 4] decoded xyxy.
        Returns InstanceData with ``bboxes`` [K, 4], ``scores`` (GI scores), ``labels`` (class of the
        model whose box was taken), ``from_teacher`` (bool) and ``index`` (position r), K <= top_k.
        """
        s_probs = s_probs.detach()
        s_boxes = s_boxes.detach()
        gi_score = (t_probs - s_probs).abs().max(dim=1).values
        t_top, t_label = t_probs.max(dim=1)
        s_top, s_label = s_probs.max(dim=1)
        from_teacher = t_top > s_top
        boxes = torch.where(from_teacher[:, None], t_boxes, s_boxes)
        labels = torch.where(from_teacher, t_label, s_label)
        index = torch.arange(len(gi_score), device=gi_score.device)
        wh = (boxes[:, 2:] - boxes[:, :2])
        valid = (gi_score > self.min_score) & (wh > 0).all(dim=1)
        if not bool(valid.any()):
            return _instances(boxes[:0], gi_score[:0], labels[:0], from_teacher[:0], index[:0])
        boxes, gi_score, labels, from_teacher, index = (x[valid] for x in (boxes, gi_score, labels,
                                                                           from_teacher, index))
        if len(gi_score) > self.nms_pre:
            top = gi_score.topk(self.nms_pre).indices
            boxes, gi_score, labels, from_teacher, index = (x[top] for x in (boxes, gi_score, labels,
                                                                             from_teacher, index))
        _, keep = nms(boxes.float(), gi_score.float(), self.iou_threshold)
        keep = keep[: self.top_k]  # nms returns indices sorted by decreasing score
        return _instances(boxes[keep], gi_score[keep], labels[keep], from_teacher[keep], index[keep])


def _instances(boxes, scores, labels, from_teacher, index) -> InstanceData:
    return InstanceData(bboxes=boxes, scores=scores, labels=labels, from_teacher=from_teacher, index=index)

"""GID's General Instance Selection Module (GISM, Dai et al. 2021).

Per image, over the positions (anchors or points) teacher and student share:
GI score ``P_r = max_c |P_T[r, c] - P_S[r, c]|`` (class probabilities), GI box = the teacher's decoded box
where the teacher's top score is higher than the student's, else the student's; NMS on GI boxes (the ``nms_pre`` highest scores) at IoU
``iou_threshold`` (0.3) and the ``top_k`` (10) highest GI scores are kept. Ground truth is not used: the
selected instances are where the two detectors disagree most.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

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
    chunk: int = 16384  # positions per chunk of the per-position scores (bounds the [chunk, C] temporaries)

    @torch.no_grad()
    def select(self, t_probs: Tensor, s_probs: Tensor, t_boxes: Tensor, s_boxes: Tensor,
               prob: Optional[Callable[[Tensor], Tensor]] = None) -> InstanceData:
        """General instances of one image.

        ``t_probs``/``s_probs``: [N, C] class probabilities, or with ``prob`` (e.g. ``torch.sigmoid``) the
        scores that ``prob`` turns into them; ``t_boxes``/``s_boxes``: [N, 4] decoded xyxy.
        Returns InstanceData with ``bboxes`` [K, 4], ``scores`` (GI scores), ``labels`` (class of the
        model whose box was taken), ``from_teacher`` (bool) and ``index`` (position r), K <= top_k.
        """
        s_boxes = s_boxes.detach()
        gi_score, t_top, t_label, s_top, s_label = self.position_scores(t_probs, s_probs.detach(), prob)
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

    def position_scores(self, t: Tensor, s: Tensor, prob: Optional[Callable[[Tensor], Tensor]] = None):
        """Per position: the GI score max_c |P_T - P_S|, the teacher's top probability and class, the student's.
        Computed ``chunk`` positions at a time, so no [N, C] temporary (probabilities, their difference) exists
        for a dense head's ~10^5 positions x 80 classes while the student's graph is alive: the values are those
        of the whole-tensor form, element by element."""
        parts = []
        for start in range(0, len(t), self.chunk):
            tc, sc = t[start:start + self.chunk], s[start:start + self.chunk]
            if prob is not None:
                tc, sc = prob(tc), prob(sc)
            parts.append(((tc - sc).abs_().max(dim=1).values, *tc.max(dim=1), *sc.max(dim=1)))
        if not parts:
            empty = t.new_zeros(0)
            return empty, empty, empty.long(), empty, empty.long()
        return tuple(torch.cat(column) for column in zip(*parts))


def _instances(boxes, scores, labels, from_teacher, index) -> InstanceData:
    return InstanceData(bboxes=boxes, scores=scores, labels=labels, from_teacher=from_teacher, index=index)

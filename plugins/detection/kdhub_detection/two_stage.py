"""Two-stage detectors (Faster R-CNN: an RPN and a standard RoI head) seen the way GID needs them.

GISM compares teacher and student position by position. In a two-stage detector the final class scores come
from the RoI head, on proposals that differ between the two models, so both RoI heads are run on the SAME
proposals: per image, the student's proposals together with the teacher's (each from its own RPN, mmdet's
``predict_by_feat`` with its proposal config). On each shared proposal the class probabilities are the RoI
head's softmax without the background column (as mmdet's ``BBoxHead.predict_by_feat`` computes them) and the
box is the proposal refined by the head's own bbox coder for that model's top class. Positives for the
response loss come from each head's own assigner (RoI head: ``bbox_assigner``; RPN: ``assigner``) applied to
the general instances as if they were ground truth, without the random sampler.
"""
from __future__ import annotations

import copy
from typing import List, Tuple

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.utils import unpack_gt_instances
from mmdet.structures.bbox import bbox2roi
from mmengine.structures import InstanceData
from torch import Tensor

from .dense_heads import supported


def is_two_stage(detector) -> bool:
    """Faster R-CNN-like: a TwoStageDetector with an anchor-based RPN and a StandardRoIHead (one bbox head)."""
    return (isinstance(detector, TwoStageDetector) and getattr(detector, "rpn_head", None) is not None
            and supported(detector.rpn_head) and type(detector.roi_head) is StandardRoIHead
            and detector.roi_head.with_bbox and not detector.roi_head.bbox_head.custom_cls_channels)


def student_pass(student, inputs: Tensor, data_samples) -> Tuple[tuple, tuple, List[InstanceData], dict]:
    """mmdet's ``TwoStageDetector.loss`` kept open: (neck features, RPN outputs, proposals, GT losses)."""
    feats = student.extract_feat(inputs)
    rpn_samples = copy.deepcopy(data_samples)
    for sample in rpn_samples:  # the RPN is class-agnostic: every object is class 0
        sample.gt_instances.labels = torch.zeros_like(sample.gt_instances.labels)
    gts, ignores, metas = unpack_gt_instances(rpn_samples)
    rpn_outs = student.rpn_head(feats)
    losses = student.rpn_head.loss_by_feat(*rpn_outs, gts, metas, ignores)
    losses = {(k if "loss" not in k or "rpn" in k else f"rpn_{k}"): v for k, v in losses.items()}
    cfg = student.train_cfg.get("rpn_proposal", student.test_cfg.rpn)
    proposals = student.rpn_head.predict_by_feat(*rpn_outs, batch_img_metas=metas, cfg=cfg)
    losses.update(student.roi_head.loss(feats, [p.clone() for p in proposals], data_samples))
    return feats, rpn_outs, proposals, losses


@torch.no_grad()
def teacher_pass(teacher, inputs: Tensor, metas: List[dict]) -> Tuple[tuple, tuple, List[InstanceData]]:
    """The frozen teacher: (neck features, RPN outputs, its test-time proposals)."""
    feats = teacher.extract_feat(inputs)
    rpn_outs = teacher.rpn_head(feats)
    proposals = teacher.rpn_head.predict_by_feat(*rpn_outs, batch_img_metas=metas, cfg=teacher.test_cfg.rpn)
    return feats, rpn_outs, proposals


def shared_rois(*proposal_lists: List[InstanceData]) -> Tensor:
    """[R, 5] RoIs (image index, xyxy): per image, the proposals of every list, in order."""
    return bbox2roi([torch.cat([p[b].bboxes.detach() for p in proposal_lists]) for b in range(len(proposal_lists[0]))])


class RoIHeadView:
    """Class probabilities, refined boxes and GI positives of one StandardRoIHead on given RoIs."""

    def __init__(self, roi_head):
        self.roi_head = roi_head
        self.bbox_head = roi_head.bbox_head

    def forward(self, feats, rois: Tensor) -> Tuple[Tensor, Tensor]:
        """(class logits [R, C + 1], box deltas [R, 4] or [R, 4C])."""
        out = self.roi_head._bbox_forward(feats, rois)
        return out["cls_score"], out["bbox_pred"]

    def probs(self, cls_score: Tensor) -> Tensor:
        """[R, C] foreground class probabilities (softmax over C + 1, background dropped)."""
        return cls_score.softmax(dim=-1)[:, : self.bbox_head.num_classes]

    def class_deltas(self, bbox_pred: Tensor, labels: Tensor) -> Tensor:
        """[R, 4] deltas of class ``labels`` (all classes share them when regression is class-agnostic)."""
        if self.bbox_head.reg_class_agnostic:
            return bbox_pred
        return bbox_pred.view(len(bbox_pred), -1, 4)[torch.arange(len(bbox_pred), device=bbox_pred.device), labels]

    def boxes(self, rois: Tensor, bbox_pred: Tensor, labels: Tensor, metas: List[dict]) -> Tensor:
        """[R, 4] xyxy: each RoI refined for class ``labels``, clipped to its image."""
        out = rois.new_zeros((len(rois), 4))
        deltas = self.class_deltas(bbox_pred, labels)
        for b, meta in enumerate(metas):
            idx = rois[:, 0] == b
            decoded = self.bbox_head.bbox_coder.decode(rois[idx, 1:], deltas[idx], max_shape=meta["img_shape"])
            out[idx] = getattr(decoded, "tensor", decoded)
        return out

    @torch.no_grad()
    def positives(self, rois: Tensor, instances: List[InstanceData]) -> Tuple[Tensor, Tensor]:
        """RoIs the head's own ``bbox_assigner`` makes positive for ``instances`` as ground truth:
        (mask [R], labels [R] of the assigned instance, -1 elsewhere)."""
        mask = torch.zeros(len(rois), dtype=torch.bool, device=rois.device)
        labels = torch.full((len(rois),), -1, dtype=torch.long, device=rois.device)
        for b, inst in enumerate(instances):
            idx = torch.nonzero(rois[:, 0] == b, as_tuple=False).squeeze(1)
            if len(inst) == 0 or len(idx) == 0:
                continue
            gts = InstanceData(bboxes=inst.bboxes.float(), labels=inst.labels.long())
            gt_inds = self.roi_head.bbox_assigner.assign(InstanceData(priors=rois[idx, 1:]), gts).gt_inds
            pos = gt_inds > 0
            mask[idx[pos]] = True
            labels[idx[pos]] = gts.labels[gt_inds[pos] - 1]
        return mask, labels

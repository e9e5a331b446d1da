"""GID: General Instance Distillation (Dai et al., CVPR 2021) for dense detectors (RetinaNet, FCOS).

On the general instances GISM selects (:mod:`.gism`):
- feature: RoIAlign (mmdet's SingleRoIExtractor, level by box size) of teacher and student FPN features,
  ``mean_i ||f_T - adapt(f_S)||^2``;
- relation: RKD distance between the instances' features within each image (:class:`kdhub.RKDDistanceLoss`);
- response: on the positions the head's own assignment makes positive for the GI boxes, BCE of student
  logits to sigmoid teacher logits, L1 between regression outputs (and BCE on FCOS centerness).
Teacher and student must use the same dense head type, priors and strides.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi
from mmengine.logging import MessageHub, MMLogger
from torch import Tensor, nn

from kdhub.adapters import build_adapter
from kdhub.config import ConfigError
from kdhub.losses import RKDDistanceLoss

from .dense_heads import DenseHeadView, supported
from .gism import GISM


def _neck_channels(detector) -> int:
    neck = getattr(detector, "neck", None)
    channels = getattr(neck, "out_channels", None)
    if channels is None:
        raise ConfigError(f"GID needs an FPN-style neck with out_channels; {type(detector).__name__} has "
                          f"{type(neck).__name__ if neck is not None else 'no neck'}")
    return int(channels)


@MODELS.register_module()
class GID(nn.Module):
    """GID distiller: GISM plus feature, relation and response losses (weights 0 switch a term off).

    The selection is visible for debugging: the GI boxes per image are logged as ``train/gid_boxes_per_image``,
    and ``log_boxes_every=N`` logs every image's GI boxes, scores, labels and box source every N iterations.
    """

    method = "gid"

    def __init__(self, feature_weight: float = 5e-3, relation_weight: float = 40.0, response_weight: float = 0.1,
                 regression_weight: Optional[float] = None, iou_threshold: float = 0.3, top_k: int = 10,
                 min_score: float = 0.0, nms_pre: int = 1000, roi_size: int = 7, finest_scale: int = 56, adapter: str = "auto",
                 log_boxes_every: int = 0):
        super().__init__()
        self.feature_weight, self.relation_weight = float(feature_weight), float(relation_weight)
        self.response_weight = float(response_weight)
        self.regression_weight = float(response_weight if regression_weight is None else regression_weight)
        self.gism = GISM(iou_threshold, top_k, min_score, nms_pre)
        self.roi_size, self.finest_scale, self.adapter_kind = roi_size, finest_scale, adapter
        self.relation = RKDDistanceLoss()
        self.adapter: nn.Module = nn.Identity()
        self.last_selection: List = []
        self.log_boxes_every, self._calls = int(log_boxes_every), 0

    # set-up ----------------------------------------------------------------------------------------
    def setup(self, student, teacher) -> None:
        """Check the pair is supported and build the RoI extractors and the feature adapter."""
        for role, det in (("student", student), ("teacher", teacher)):
            head = getattr(det, "bbox_head", None)
            if head is None or not supported(head) or not hasattr(det, "neck"):
                raise ConfigError(f"GID supports dense single-stage detectors (RetinaNet, FCOS: an FPN neck and an "
                                  f"AnchorHead/FCOSHead); the {role} is {type(det).__name__} with "
                                  f"{type(head).__name__ if head is not None else 'no bbox_head'}. For DETR-family "
                                  f"detectors use DETRDistill (distiller=dict(type='DETRDistill')).")
        if type(student.bbox_head) is not type(teacher.bbox_head):
            raise ConfigError(f"GID compares teacher and student position by position, so both need the same head "
                              f"type; got student {type(student.bbox_head).__name__}, teacher "
                              f"{type(teacher.bbox_head).__name__}")
        s_gen, t_gen = student.bbox_head.prior_generator, teacher.bbox_head.prior_generator
        if [tuple(s) for s in s_gen.strides] != [tuple(s) for s in t_gen.strides] or \
                s_gen.num_base_priors != t_gen.num_base_priors:
            raise ConfigError("GID needs the same priors in teacher and student (strides and anchors per position); "
                              f"student strides {s_gen.strides} x {s_gen.num_base_priors}, teacher "
                              f"{t_gen.strides} x {t_gen.num_base_priors}")
        s_ch, t_ch = _neck_channels(student), _neck_channels(teacher)
        strides = [int(s[0]) for s in s_gen.strides]
        roi = dict(type="RoIAlign", output_size=self.roi_size, sampling_ratio=0)
        self.s_roi = SingleRoIExtractor(roi, s_ch, strides, finest_scale=self.finest_scale)
        self.t_roi = SingleRoIExtractor(roi, t_ch, strides, finest_scale=self.finest_scale)
        self.adapter = build_adapter(self.adapter_kind, s_ch, t_ch)
        self.s_view, self.t_view = DenseHeadView(student.bbox_head), DenseHeadView(teacher.bbox_head)

    # losses ----------------------------------------------------------------------------------------
    def loss(self, student, teacher, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        gts, gts_ignore, metas = unpack_gt_instances(data_samples)
        s_feats = student.extract_feat(inputs)
        s_outs = student.bbox_head(s_feats)
        losses = student.bbox_head.loss_by_feat(*s_outs, gts, metas, gts_ignore)
        with torch.no_grad():
            t_feats = teacher.extract_feat(inputs)
            t_outs = teacher.bbox_head(t_feats)
        losses.update(self.distill(s_feats, s_outs, t_feats, t_outs, metas, student.bbox_head.training))
        return losses

    def distill(self, s_feats, s_outs, t_feats, t_outs, metas, student_training: bool = True) -> Dict[str, Tensor]:
        s = self.s_view.flatten(s_outs, training=student_training)
        t = self.t_view.flatten(t_outs, training=False)
        s_probs, t_probs = s.logits.sigmoid(), t.logits.sigmoid()
        selection = [self.gism.select(t_probs[b], s_probs[b], t.boxes[b], s.boxes[b]) for b in range(len(metas))]
        self.last_selection = selection
        self._calls += 1
        if self.log_boxes_every and self._calls % self.log_boxes_every == 0:
            for line in self.describe_selection(metas):
                MMLogger.get_current_instance().info(f"GISM {line}")
        zero = s.logits.sum() * 0.0
        out: Dict[str, Tensor] = {}
        num = sum(len(sel) for sel in selection)
        MessageHub.get_current_instance().update_scalar("train/gid_boxes_per_image", num / max(1, len(metas)))
        if num and (self.feature_weight or self.relation_weight):
            rois = bbox2roi([sel.bboxes for sel in selection])
            f_s = self.s_roi(tuple(s_feats[: self.s_roi.num_inputs]), rois)
            with torch.no_grad():
                f_t = self.t_roi(tuple(t_feats[: self.t_roi.num_inputs]), rois)
            if self.feature_weight:
                diff = (f_t - self.adapter(f_s)).pow(2).flatten(1).sum(dim=1)
                out["loss_gid_feat"] = self.feature_weight * diff.mean()
            if self.relation_weight:
                out["loss_gid_rel"] = self.relation_weight * self._relation(f_s, f_t, rois[:, 0])
        elif self.feature_weight or self.relation_weight:
            out.update({k: zero for k, w in (("loss_gid_feat", self.feature_weight),
                                             ("loss_gid_rel", self.relation_weight)) if w})
        if self.response_weight or self.regression_weight:
            out.update(self._response(s, t, s_outs, selection, metas, zero))
        return out

    def describe_selection(self, metas) -> List[str]:
        """The last selection, one line per image: GI boxes (xyxy), GI scores, labels, T/S box source."""
        lines = []
        for sel, meta in zip(self.last_selection, metas):
            boxes = [[round(v, 1) for v in b] for b in sel.bboxes.tolist()]
            src = "".join("T" if t else "S" for t in sel.from_teacher.tolist())
            lines.append(f"image {meta.get('img_id', '?')}: {len(sel)} boxes {boxes} scores "
                         f"{[round(v, 3) for v in sel.scores.tolist()]} labels {sel.labels.tolist()} source {src}")
        return lines

    def _relation(self, f_s: Tensor, f_t: Tensor, image_of: Tensor) -> Tensor:
        terms = []
        for b in image_of.unique():
            idx = (image_of == b).nonzero().squeeze(1)
            if len(idx) >= 2:
                terms.append(self.relation(f_s[idx], f_t[idx]))
        return torch.stack(terms).mean() if terms else f_s.sum() * 0.0

    def _response(self, s, t, s_outs, selection, metas, zero) -> Dict[str, Tensor]:
        pos = self.s_view.positives(s_outs, selection, metas)
        out = {}
        n = int(pos.sum())
        if n == 0:
            if self.response_weight:
                out["loss_gid_cls"] = zero
            if self.regression_weight:
                out["loss_gid_reg"] = zero
            return out
        if self.response_weight:
            bce = F.binary_cross_entropy_with_logits(s.logits[pos], t.logits[pos].sigmoid(), reduction="sum")
            out["loss_gid_cls"] = self.response_weight * bce / n
        if self.regression_weight:
            reg = F.l1_loss(s.reg[pos], t.reg[pos], reduction="sum") / n
            if s.centerness is not None:
                reg = reg + F.binary_cross_entropy_with_logits(s.centerness[pos], t.centerness[pos].sigmoid(),
                                                               reduction="sum") / n
            out["loss_gid_reg"] = self.regression_weight * reg
        return out

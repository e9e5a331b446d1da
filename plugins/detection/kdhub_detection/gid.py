"""GID: General Instance Distillation (Dai et al., CVPR 2021) for dense detectors (RetinaNet, FCOS) and
two-stage detectors (Faster R-CNN).

On the general instances GISM selects (:mod:`.gism`):
- feature: RoIAlign of teacher and student FPN features on a 10 x 10 grid, the level of each box by the canonical
  FPN rule (224 px at P4); ``sum ||f_T - adapt(f_S)||^2 / (N x H x W)``, the squared channel distance averaged
  over the N instances' grid cells;
- relation: RKD distance between the features of all the batch's instances: pairwise distances, each matrix
  divided by its mean off-diagonal entry, smooth-L1 summed and divided by ``n^2 - n``;
- response: on the positions the head's own assignment makes positive for the GI boxes, BCE of student
  logits to sigmoid teacher logits, L1 between regression outputs (and BCE on FCOS centerness).
Dense detectors: GISM on the head's outputs per anchor/point; teacher and student need the same head type,
priors and strides.
Two-stage detectors (:mod:`.two_stage`): GISM on the RoI heads' class scores and refined boxes, both heads run
on the same proposals (the student's and the teacher's); the response is the RoI head's (softmax KD of the
class logits, L1 of the class's box deltas on the proposals its assigner makes positive for GI boxes) and the
RPN's (as for a dense head, objectness and deltas on the anchors its assigner makes positive for GI boxes).

Where the paper and the first author's released reproduction disagree, the defaults follow the released code
(it produced the numbers the authors stand behind); the paper's forms and kdhub's earlier ones stay available:
``feature_norm='instance'`` (per-instance sum over C x H x W, averaged over instances), ``relation_scope='image'``
(pairs within each image, kdhub's RKDDistanceLoss, averaged over images), ``roi_size=7`` and an integer
``finest_scale`` (mmdet's level rule). The plugin README records what each source says.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

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
from kdhub.losses import KDLoss, RKDDistanceLoss

from .dense_heads import DenseHeadView, supported
from .gism import GISM
from .two_stage import RoIHeadView, is_two_stage, shared_rois, student_pass, teacher_pass


def _neck_channels(detector) -> int:
    neck = getattr(detector, "neck", None)
    channels = getattr(neck, "out_channels", None)
    if channels is None:
        raise ConfigError(f"GID needs an FPN-style neck with out_channels; {type(detector).__name__} has "
                          f"{type(neck).__name__ if neck is not None else 'no neck'}")
    return int(channels)


FEATURE_NORMS = ("pixel", "instance")
RELATION_SCOPES = ("batch", "image")


class CanonicalRoIExtractor(SingleRoIExtractor):
    """mmdet's SingleRoIExtractor with the FPN paper's level rule (Lin et al., 2017, eq. 1), as detectron2's
    ROIPooler applies it in the released GID code: a box of side ``s = sqrt(w h)`` goes to pyramid level
    ``k = floor(canonical_level + log2(s / canonical_scale))``, clamped to the levels the detector has. Level k
    has stride 2^k, so the first level of ``featmap_strides`` (8 for RetinaNet's P3-P7, 4 for Faster R-CNN's
    P2-P5) fixes which index k lands on; mmdet's own rule counts from the first level instead, so its
    ``finest_scale=56`` puts a 224 px box on P4 only when the levels start at P2."""

    def __init__(self, roi_layer: dict, out_channels: int, featmap_strides: Sequence[int],
                 canonical_scale: float = 224.0, canonical_level: int = 4):
        super().__init__(roi_layer, out_channels, list(featmap_strides))
        levels = [math.log2(s) for s in featmap_strides]
        first = round(levels[0])
        if any(abs(lvl - (first + i)) > 1e-6 for i, lvl in enumerate(levels)):
            raise ConfigError(f"GID's canonical RoI level rule needs FPN strides 2^k of consecutive levels k; got "
                              f"{list(featmap_strides)} (pass an integer model.distiller.finest_scale to use "
                              f"mmdet's size rule instead)")
        self.first_level, self.canonical_scale, self.canonical_level = first, float(canonical_scale), canonical_level

    def map_roi_levels(self, rois: Tensor, num_levels: int) -> Tensor:
        """Index into ``featmap_strides`` of each RoI ([R, 5]: image, x1, y1, x2, y2)."""
        side = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
        level = torch.floor(self.canonical_level + torch.log2(side / self.canonical_scale + 1e-6))
        level = level.clamp(min=self.first_level, max=self.first_level + num_levels - 1)
        return (level - self.first_level).long()


def _normalised_distances(x: Tensor) -> Tensor:
    """Pairwise Euclidean distances of the rows of ``x`` ([n, D]), zero diagonal, divided by their mean
    off-diagonal value."""
    sq = (x * x).sum(dim=1)
    d = (sq[:, None] + sq[None, :] - 2.0 * x @ x.t()).clamp_min(1e-12).sqrt()
    n = len(x)
    d = d * (1.0 - torch.eye(n, device=x.device, dtype=x.dtype))
    return d / (d.sum() / (n * n - n)).clamp_min(1e-12)


def batch_relation_loss(f_s: Tensor, f_t: Tensor) -> Tensor:
    """GID's relation loss over one set of n instances (the released code's form): smooth-L1 (beta 1) between
    the student's and the teacher's normalised distance matrices, summed and divided by the ``n^2 - n`` pairs.
    The released code returns 0 below 3 instances; for 2 both normalised matrices are [[0, 1], [1, 0]], so the
    loss is 0 here as well."""
    n = len(f_s)
    if n < 2:
        return f_s.sum() * 0.0
    ds, dt = _normalised_distances(f_s.flatten(1)), _normalised_distances(f_t.flatten(1))
    return F.smooth_l1_loss(ds, dt, reduction="sum", beta=1.0) / (n * n - n)


@MODELS.register_module()
class GID(nn.Module):
    """GID distiller: GISM plus feature, relation and response losses (weights 0 switch a term off;
    ``rpn_weight`` scales the RPN's response terms of a two-stage detector, 0 switches them off).

    Defaults follow the first author's released reproduction: ``feature_weight`` 0.005 on the feature loss
    normalised per RoI grid cell (``feature_norm='pixel'``: summed squared difference / (N x H x W)), a
    ``roi_size`` 10 x 10 RoIAlign grid with 2 samples per bin, the relation over all the batch's instances
    (``relation_scope='batch'``) and the canonical FPN level rule (``canonical_scale`` 224 px at
    ``canonical_level`` 4). The paper writes the feature loss as a per-instance sum averaged over instances:
    ``feature_norm='instance'``, H x W times the 'pixel' value on the same grid (with ``roi_size=7`` it is kdhub's
    earlier form). ``relation_scope='image'`` forms pairs within each image only (kdhub's earlier form). An
    integer ``finest_scale`` switches the level rule to mmdet's SingleRoIExtractor (``floor(log2(s /
    finest_scale))`` counted from the first level, kdhub's earlier mapping).

    The selection is visible for debugging: the GI boxes per image are logged as ``train/gid_boxes_per_image``,
    and ``log_boxes_every=N`` logs every image's GI boxes, scores, labels and box source every N iterations.
    """

    method = "gid"

    def __init__(self, feature_weight: float = 0.005, relation_weight: float = 40.0, response_weight: float = 0.1,
                 regression_weight: Optional[float] = None, iou_threshold: float = 0.3, top_k: int = 10,
                 min_score: float = 0.0, nms_pre: int = 1000, roi_size: int = 10, roi_sampling_ratio: int = 2,
                 feature_norm: str = "pixel", relation_scope: str = "batch", canonical_scale: float = 224.0,
                 canonical_level: int = 4, finest_scale: Optional[int] = None, adapter: str = "auto",
                 log_boxes_every: int = 0, rpn_weight: float = 1.0):
        super().__init__()
        for key, value, choices in (("feature_norm", feature_norm, FEATURE_NORMS),
                                    ("relation_scope", relation_scope, RELATION_SCOPES)):
            if value not in choices:
                raise ConfigError(f"model.distiller.{key}={value!r} is not one of {', '.join(map(repr, choices))}")
        self.feature_weight, self.relation_weight = float(feature_weight), float(relation_weight)
        self.response_weight, self.rpn_weight = float(response_weight), float(rpn_weight)
        self.regression_weight = float(response_weight if regression_weight is None else regression_weight)
        self.gism = GISM(iou_threshold, top_k, min_score, nms_pre)
        self.roi_size, self.roi_sampling_ratio, self.adapter_kind = int(roi_size), int(roi_sampling_ratio), adapter
        self.feature_norm, self.relation_scope = feature_norm, relation_scope
        self.canonical_scale, self.canonical_level, self.finest_scale = canonical_scale, canonical_level, finest_scale
        self.relation = RKDDistanceLoss()
        self.roi_kd = KDLoss(temperature=1.0)
        self.adapter: nn.Module = nn.Identity()
        self.last_selection: List = []
        self.log_boxes_every, self._calls = int(log_boxes_every), 0

    # set-up ----------------------------------------------------------------------------------------
    def setup(self, student, teacher) -> None:
        """Check the pair is supported and build the RoI extractors and the feature adapter."""
        kinds = [_kind(det) for det in (student, teacher)]
        for role, det, kind in (("student", student, kinds[0]), ("teacher", teacher, kinds[1])):
            if kind is None:
                head = getattr(det, "bbox_head", getattr(det, "roi_head", None))
                raise ConfigError(f"GID supports dense single-stage detectors (RetinaNet, FCOS: an FPN neck and an "
                                  f"AnchorHead/FCOSHead) and two-stage detectors with an RPN and a StandardRoIHead "
                                  f"(Faster R-CNN); the {role} is {type(det).__name__} with "
                                  f"{type(head).__name__ if head is not None else 'no bbox_head'}. For DETR-family "
                                  f"detectors use DETRDistill (distiller=dict(type='DETRDistill')).")
        self.two_stage = kinds[0] == "two_stage"
        s_head, t_head = (det.rpn_head if kind == "two_stage" else det.bbox_head
                          for det, kind in zip((student, teacher), kinds))
        if kinds[0] != kinds[1] or type(s_head) is not type(t_head):
            raise ConfigError(f"GID compares teacher and student position by position, so both need the same head "
                              f"type; got student {type(student).__name__} with {type(s_head).__name__}, teacher "
                              f"{type(teacher).__name__} with {type(t_head).__name__}")
        s_gen, t_gen = s_head.prior_generator, t_head.prior_generator
        if [tuple(s) for s in s_gen.strides] != [tuple(s) for s in t_gen.strides] or \
                s_gen.num_base_priors != t_gen.num_base_priors:
            raise ConfigError("GID needs the same priors in teacher and student (strides and anchors per position); "
                              f"student strides {s_gen.strides} x {s_gen.num_base_priors}, teacher "
                              f"{t_gen.strides} x {t_gen.num_base_priors}")
        s_ch, t_ch = _neck_channels(student), _neck_channels(teacher)
        if self.two_stage:  # instance features on the RoI head's own levels
            strides = [int(s) for s in student.roi_head.bbox_roi_extractor.featmap_strides]
            if student.roi_head.bbox_head.reg_class_agnostic != teacher.roi_head.bbox_head.reg_class_agnostic:
                raise ConfigError("GID compares the RoI heads' box deltas, so teacher and student need the same "
                                  "roi_head.bbox_head.reg_class_agnostic")
            self.s_rois, self.t_rois = RoIHeadView(student.roi_head), RoIHeadView(teacher.roi_head)
        else:
            strides = [int(s[0]) for s in s_gen.strides]
        self.s_roi, self.t_roi = self.roi_extractor(s_ch, strides), self.roi_extractor(t_ch, strides)
        self.adapter = build_adapter(self.adapter_kind, s_ch, t_ch)
        self.s_view, self.t_view = DenseHeadView(s_head), DenseHeadView(t_head)

    def roi_extractor(self, channels: int, strides: Sequence[int]) -> SingleRoIExtractor:
        """RoIAlign (aligned, as detectron2's ROIAlignV2) on ``roi_size`` x ``roi_size`` bins over the FPN levels
        of ``strides``, the level of each box by the canonical rule, or by mmdet's with an integer
        ``finest_scale``."""
        roi = dict(type="RoIAlign", output_size=self.roi_size, sampling_ratio=self.roi_sampling_ratio, aligned=True)
        if self.finest_scale is not None:
            return SingleRoIExtractor(roi, channels, list(strides), finest_scale=self.finest_scale)
        return CanonicalRoIExtractor(roi, channels, strides, self.canonical_scale, self.canonical_level)

    # losses ----------------------------------------------------------------------------------------
    def loss(self, student, teacher, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        if self.two_stage:
            return self._two_stage_loss(student, teacher, inputs, data_samples)
        gts, gts_ignore, metas = unpack_gt_instances(data_samples)
        with torch.no_grad():  # first: its working memory is freed before the student's graph is built
            t_feats = teacher.extract_feat(inputs)
            t_outs = teacher.bbox_head(t_feats)
        s_feats = student.extract_feat(inputs)
        s_outs = student.bbox_head(s_feats)
        losses = student.bbox_head.loss_by_feat(*s_outs, gts, metas, gts_ignore)
        losses.update(self.distill(s_feats, s_outs, t_feats, t_outs, metas, student.bbox_head.training))
        return losses

    def distill(self, s_feats, s_outs, t_feats, t_outs, metas, student_training: bool = True) -> Dict[str, Tensor]:
        """Dense detectors: GISM on the head's positions, then the three losses."""
        s = self.s_view.flatten(s_outs, training=student_training)
        t = self.t_view.flatten(t_outs, training=False)
        selection = [self.gism.select(t.logits[b], s.logits[b], t.boxes[b], s.boxes[b], prob=torch.sigmoid)
                     for b in range(len(metas))]
        out = self._instance_terms(s_feats, t_feats, selection, metas)
        if self.response_weight or self.regression_weight:
            out.update(self._response(s, t, s_outs, selection, metas, "loss_gid"))
        return out

    def _two_stage_loss(self, student, teacher, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        """Two-stage detectors: GISM on both RoI heads' outputs on shared proposals, then the three losses."""
        metas = [sample.metainfo for sample in data_samples]
        t_feats, t_rpn, t_props = teacher_pass(teacher, inputs, metas)  # first, as in loss
        s_feats, s_rpn, s_props, losses = student_pass(student, inputs, data_samples)
        rois = shared_rois(s_props, t_props)
        with torch.no_grad():
            s_cls, s_reg = self.s_rois.forward(s_feats, rois)
            t_cls, t_reg = self.t_rois.forward(t_feats, rois)
        selection = self.select_on_rois(rois, s_cls, s_reg, t_cls, t_reg, metas)
        losses.update(self._instance_terms(s_feats, t_feats, selection, metas))
        if self.response_weight or self.regression_weight:
            losses.update(self._roi_response(s_feats, rois, t_cls, t_reg, selection))
            if self.rpn_weight:
                s = self.s_view.flatten(s_rpn, training=True)
                t = self.t_view.flatten(t_rpn, training=False)
                terms = self._response(s, t, s_rpn, selection, metas, "loss_gid_rpn")
                losses.update({k: self.rpn_weight * v for k, v in terms.items()})
        return losses

    @torch.no_grad()
    def select_on_rois(self, rois: Tensor, s_cls: Tensor, s_reg: Tensor, t_cls: Tensor, t_reg: Tensor,
                       metas) -> List:
        """GISM per image on RoIs both RoI heads saw (their class logits and box deltas on ``rois``); each
        selected instance's ``index`` is its RoI's position within the image's RoIs."""
        s_probs, t_probs = self.s_rois.probs(s_cls), self.t_rois.probs(t_cls)
        s_boxes = self.s_rois.boxes(rois, s_reg, s_probs.argmax(dim=1), metas)
        t_boxes = self.t_rois.boxes(rois, t_reg, t_probs.argmax(dim=1), metas)
        selection = []
        for b in range(len(metas)):
            idx = rois[:, 0] == b
            selection.append(self.gism.select(t_probs[idx], s_probs[idx], t_boxes[idx], s_boxes[idx]))
        return selection

    def describe_selection(self, metas) -> List[str]:
        """The last selection, one line per image: GI boxes (xyxy), GI scores, labels, T/S box source."""
        lines = []
        for sel, meta in zip(self.last_selection, metas):
            boxes = [[round(v, 1) for v in b] for b in sel.bboxes.tolist()]
            src = "".join("T" if t else "S" for t in sel.from_teacher.tolist())
            lines.append(f"image {meta.get('img_id', '?')}: {len(sel)} boxes {boxes} scores "
                         f"{[round(v, 3) for v in sel.scores.tolist()]} labels {sel.labels.tolist()} source {src}")
        return lines

    def _feature(self, f_s: Tensor, f_t: Tensor) -> Tensor:
        """Unweighted feature loss on RoI features [N, C, H, W]. 'pixel' (the released code):
        sum of (f_T - adapt(f_S))^2 over instances, channels and grid cells, / (N x H x W). 'instance' (the
        paper's equation): that sum per instance, averaged over the N instances."""
        diff = (f_t - self.adapter(f_s)).pow(2)
        if self.feature_norm == "pixel":
            n, _, h, w = diff.shape
            return diff.sum() / (n * h * w)
        return diff.flatten(1).sum(dim=1).mean()

    def _relation(self, f_s: Tensor, f_t: Tensor, image_of: Tensor) -> Tensor:
        """Unweighted relation loss on the unadapted RoI features. 'batch' (the released code): one set of all
        the batch's instances (:func:`batch_relation_loss`). 'image': kdhub's RKDDistanceLoss (smooth-L1 averaged
        over all n^2 entries) within each image with 2 or more instances, averaged over those images."""
        if self.relation_scope == "batch":
            return batch_relation_loss(f_s, f_t)
        terms = []
        for b in image_of.unique():
            idx = (image_of == b).nonzero().squeeze(1)
            if len(idx) >= 2:
                terms.append(self.relation(f_s[idx], f_t[idx]))
        return torch.stack(terms).mean() if terms else f_s.sum() * 0.0

    def _instance_terms(self, s_feats, t_feats, selection, metas) -> Dict[str, Tensor]:
        """Record the selection (debug log, boxes per image), then the feature and relation losses on it."""
        self.last_selection = selection
        self._calls += 1
        if self.log_boxes_every and self._calls % self.log_boxes_every == 0:
            for line in self.describe_selection(metas):
                MMLogger.get_current_instance().info(f"GISM {line}")
        num = sum(len(sel) for sel in selection)
        MessageHub.get_current_instance().update_scalar("train/gid_boxes_per_image", num / max(1, len(metas)))
        names = [name for name, w in (("loss_gid_feat", self.feature_weight), ("loss_gid_rel", self.relation_weight))
                 if w]
        if not names:
            return {}
        if not num:
            return {name: s_feats[0].sum() * 0.0 for name in names}
        out: Dict[str, Tensor] = {}
        rois = bbox2roi([sel.bboxes for sel in selection])
        f_s = self.s_roi(tuple(s_feats[: self.s_roi.num_inputs]), rois)
        with torch.no_grad():
            f_t = self.t_roi(tuple(t_feats[: self.t_roi.num_inputs]), rois)
        if self.feature_weight:
            out["loss_gid_feat"] = self.feature_weight * self._feature(f_s, f_t)
        if self.relation_weight:
            out["loss_gid_rel"] = self.relation_weight * self._relation(f_s, f_t, rois[:, 0])
        return out

    def _response(self, s, t, s_outs, selection, metas, prefix: str) -> Dict[str, Tensor]:
        """Dense outputs (a dense head or the RPN): BCE to the teacher's sigmoid scores and L1 between the
        regression outputs on the positions the head's own assignment makes positive for the GI boxes."""
        pos = self.s_view.positives(s_outs, selection, metas)
        n = int(pos.sum())
        out = {}
        if self.response_weight:
            bce = F.binary_cross_entropy_with_logits(s.logits[pos], t.logits[pos].sigmoid(), reduction="sum")
            out[f"{prefix}_cls"] = self.response_weight * bce / max(1, n)
        if self.regression_weight:
            reg = F.l1_loss(s.reg[pos], t.reg[pos], reduction="sum")
            if s.centerness is not None:
                reg = reg + F.binary_cross_entropy_with_logits(s.centerness[pos], t.centerness[pos].sigmoid(),
                                                               reduction="sum")
            out[f"{prefix}_reg"] = self.regression_weight * reg / max(1, n)
        return out

    def _roi_response(self, s_feats, rois: Tensor, t_cls: Tensor, t_reg: Tensor, selection) -> Dict[str, Tensor]:
        """RoI head: on the shared RoIs its ``bbox_assigner`` makes positive for the GI boxes, KD (T = 1) of the
        student's class logits to the teacher's and L1 between their deltas for the assigned GI class."""
        pos, labels = self.s_rois.positives(rois, selection)
        s_cls, s_reg = self.s_rois.forward(s_feats, rois[pos])
        out = {}
        if self.response_weight:
            kd = self.roi_kd(s_cls, t_cls[pos]) if len(s_cls) else s_cls.sum() * 0.0
            out["loss_gid_cls"] = self.response_weight * kd
        if self.regression_weight:
            s_d = self.s_rois.class_deltas(s_reg, labels[pos])
            t_d = self.t_rois.class_deltas(t_reg[pos], labels[pos])
            out["loss_gid_reg"] = self.regression_weight * F.l1_loss(s_d, t_d, reduction="sum") / max(1, len(s_d))
        return out


def _kind(detector) -> Optional[str]:
    if is_two_stage(detector) and hasattr(detector, "neck"):
        return "two_stage"
    head = getattr(detector, "bbox_head", None)
    if head is not None and supported(head) and hasattr(detector, "neck"):
        return "dense"
    return None

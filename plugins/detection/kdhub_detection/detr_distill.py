"""DETRDistill (Chang et al., ICCV 2023) for DETR-family detectors in mmdet (Deformable DETR, Conditional
DETR, DINO, DETR): Hungarian-matching logits distillation (:mod:`.matching`), target-aware feature distillation
(:mod:`.feature_mask`), query-prior assignment distillation (:mod:`.query_group`) and the released code's
contrastive term on matched queries (:mod:`.contrastive`), each at every decoder layer (teacher layer l
supervises student layer l) and each switched off by a zero weight.

Both detectors run mmdet's own transformer stages (``pre_transformer`` -> ``forward_encoder`` ->
``pre_decoder`` -> ``forward_decoder``) once (the released query-prior form runs the student's a second time);
the student's ground-truth loss is its head's own ``loss_by_feat`` on that pass.

DINO: in training the student's decoder runs its contrastive denoising (CDN) queries before the matching
queries (``dn_meta['num_denoising_queries']`` of them, kept apart by DINO's attention mask). They have their
own ground-truth targets (DINO's denoising loss), so the three components use the matching part only, split
the way mmdet's ``DINOHead.split_outputs`` splits it; the frozen teacher runs in eval mode, without denoising
queries. The teacher-query group is the teacher's two-stage query prior (its content queries and the anchor
boxes its encoder selected, see :mod:`.query_group`).

Where the paper and the authors' released code (mmdet 2.x) differ, kdhub follows the released code and
config, and keeps the paper's form behind a switch:

* the target-aware feature loss is one loss per decoder layer, summed over layers
  (``feature_reduction='sum'``; ``'mean'`` averages over layers, kdhub's earlier form);
* a contrastive term on the matched student/teacher decoder queries (:mod:`.contrastive`; weight 0.2,
  temperature 0.07, every layer) is on (``contrastive_weight=0`` switches it off; the paper does not list it);
* the teacher's pseudo-target boxes are clamped to the image before matching (``clamp_teacher_boxes``);
* the query-prior group is offered in the released form as well (``query_prior='released'``: the student's own
  reference-point layer on the teacher's positional queries, the student's transformer run again); the
  default stays ``'teacher_queries'`` (the teacher's own reference points on the student's memory) because
  the two have not been compared on the benchmark yet.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from mmdet.models.dense_heads import DINOHead
from mmdet.models.detectors import DINO, DetectionTransformer
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from torch import Tensor, nn

from kdhub.adapters import build_adapter
from kdhub.config import ConfigError

from .contrastive import QueryContrast
from .feature_mask import masked_feature_loss, query_quality, target_aware_mask
from .matching import LogitsDistillation, TeacherMatcher, clamp_to_image
from .query_group import (query_group_loss, released_form_problem, released_query_inputs, teacher_assignment,
                          teacher_query_inputs)

FEATURE_REDUCTIONS = ("sum", "mean")
QUERY_PRIORS = ("teacher_queries", "released")


def run_transformer(detector, feats, data_samples) -> Tuple[dict, dict]:
    """mmdet's ``forward_transformer`` kept open: returns (decoder inputs, head inputs)."""
    enc_in, dec_in = detector.pre_transformer(feats, data_samples)
    enc_out = detector.forward_encoder(**enc_in)
    if isinstance(detector, DINO):  # DINO builds its denoising queries from the ground truth (training only)
        enc_out["batch_data_samples"] = data_samples
    tmp, head_in = detector.pre_decoder(**enc_out)
    dec_in.update(tmp)
    head_in.update(detector.forward_decoder(**dec_in))
    return dec_in, head_in


def head_outputs(detector, head_in: dict) -> Tuple[Tensor, Tensor]:
    """All layers' (class logits [L, B, Q, C], boxes [L, B, Q, 4] normalised cxcywh)."""
    kwargs = {k: head_in[k] for k in ("hidden_states", "references") if k in head_in}
    outs = detector.bbox_head(**kwargs)
    return outs[0], outs[1]


def matching_part(cls: Tensor, box: Tensor, head_in: dict) -> Tuple[Tensor, Tensor]:
    """The matching queries' outputs: DINO in training puts ``dn_meta['num_denoising_queries']`` denoising
    queries first (mmdet's ``DINOHead.split_outputs``); other detectors have matching queries only."""
    dn_meta = head_in.get("dn_meta")
    if dn_meta is None:
        return cls, box
    m_cls, m_box, _, _ = DINOHead.split_outputs(cls, box, dn_meta)
    return m_cls, m_box


def matching_hidden(hidden: Tensor, head_in: dict) -> Tensor:
    """The matching queries' decoder hidden states [L, B, Q, D] (DINO in training: after its denoising ones)."""
    dn_meta = head_in.get("dn_meta")
    if dn_meta is None:
        return hidden
    return hidden[:, :, int(dn_meta["num_denoising_queries"]):]


def _layer_name(name: str, layer: int, last: int) -> str:
    return name if layer == last else f"d{layer}.{name}"


def feature_terms(per_layer: List[Tensor], weight: float, reduction: str = "sum") -> Dict[str, Tensor]:
    """The loss entries of the target-aware feature term from its per-decoder-layer values. ``'sum'``: one
    entry per layer (``d{l}.loss_kd_feat``, the last ``loss_kd_feat``), which mmengine adds up, as the released
    code writes one loss per layer; ``'mean'``: one entry, the mean over layers."""
    if reduction == "sum":
        last = len(per_layer) - 1
        return {_layer_name("loss_kd_feat", layer, last): weight * value for layer, value in enumerate(per_layer)}
    return {"loss_kd_feat": weight * torch.stack(per_layer).mean()}


@MODELS.register_module()
class DETRDistill(nn.Module):
    """DETRDistill distiller; ``*_weight = 0`` switches a component off (ablations).

    ``feature_reduction``: ``'sum'`` (released code: one feature loss per decoder layer, summed) or ``'mean'``
    (averaged over layers). ``contrastive_weight`` / ``contrastive_temperature`` / ``contrastive_dims``: the
    released code's contrastive term on matched queries (0.2 / 0.07 / 512 there; 0 switches it off).
    ``clamp_teacher_boxes``: cut the teacher's pseudo-target boxes to the image (released code). ``query_prior``:
    ``'teacher_queries'`` or ``'released'`` (see :mod:`.query_group`)."""

    def __init__(self, logits_weight: float = 1.0, feature_weight: float = 1.0, query_weight: float = 1.0,
                 contrastive_weight: float = 0.2, contrastive_temperature: float = 0.07, contrastive_dims: int = 512,
                 feature_reduction: str = "sum", query_prior: str = "teacher_queries", clamp_teacher_boxes: bool = True,
                 cls_weight: float = 1.0, l1_weight: float = 5.0, giou_weight: float = 2.0, top_k: int = 100,
                 adapter: str = "auto"):
        super().__init__()
        if feature_reduction not in FEATURE_REDUCTIONS:
            raise ConfigError(f"distiller.feature_reduction={feature_reduction!r}: use one of {FEATURE_REDUCTIONS} "
                              f"('sum': one loss per decoder layer, summed, as the released code does)")
        if query_prior not in QUERY_PRIORS:
            raise ConfigError(f"distiller.query_prior={query_prior!r}: use one of {QUERY_PRIORS}")
        if contrastive_weight and contrastive_temperature <= 0:
            raise ConfigError(f"distiller.contrastive_temperature must be > 0 (0.07 in the released code); got "
                              f"{contrastive_temperature}")
        self.logits_weight, self.feature_weight = float(logits_weight), float(feature_weight)
        self.query_weight, self.contrastive_weight = float(query_weight), float(contrastive_weight)
        self.contrastive_temperature, self.contrastive_dims = float(contrastive_temperature), int(contrastive_dims)
        self.feature_reduction, self.query_prior = feature_reduction, query_prior
        self.clamp_teacher_boxes = bool(clamp_teacher_boxes)
        self.term_weights = (cls_weight, l1_weight, giou_weight)
        self.top_k, self.adapter_kind = top_k, adapter
        self.adapters = nn.ModuleList()
        self.contrast = None

    def setup(self, student, teacher) -> None:
        for role, det in (("student", student), ("teacher", teacher)):
            if not isinstance(det, DetectionTransformer):
                raise ConfigError(f"DETRDistill supports DETR-family detectors (DeformableDETR, ConditionalDETR, "
                                  f"DINO, DETR); the {role} is {type(det).__name__}. For RetinaNet, FCOS or "
                                  f"Faster R-CNN use GID (distiller=dict(type='GID')).")
        if type(student) is not type(teacher):
            raise ConfigError(f"DETRDistill needs teacher and student of the same detector type; got student "
                              f"{type(student).__name__}, teacher {type(teacher).__name__}")
        s_layers, t_layers = student.decoder.num_layers, teacher.decoder.num_layers
        if s_layers != t_layers:
            raise ConfigError(f"DETRDistill distils teacher decoder layer l into student layer l, so both need the "
                              f"same number of decoder layers; student decoder.num_layers={s_layers}, teacher "
                              f"{t_layers}")
        if self.query_weight and student.embed_dims != teacher.embed_dims:
            raise ConfigError(f"query-prior assignment distillation feeds the teacher's queries to the student "
                              f"decoder, so embed_dims must match (student {student.embed_dims}, teacher "
                              f"{teacher.embed_dims}); or set distiller.query_weight=0")
        if self.query_weight and self.query_prior == "released":
            problem = released_form_problem(student)
            if problem:
                raise ConfigError(f"distiller.query_prior='released' applies the student's own reference-point layer "
                                  f"to the teacher's positional queries, but {problem}; use "
                                  f"distiller.query_prior='teacher_queries' (or query_weight=0)")
        self.num_layers = s_layers
        if self.contrastive_weight:
            self.contrast = QueryContrast(student.embed_dims, teacher.embed_dims, self.contrastive_dims,
                                          self.contrastive_temperature)
        self.matcher = TeacherMatcher(student.bbox_head.num_classes, *self.term_weights)
        self.logits = LogitsDistillation(self.matcher, *self.term_weights)
        s_ch, t_ch = _neck_channels(student), _neck_channels(teacher)
        if self.feature_weight and t_ch != teacher.embed_dims:
            raise ConfigError(f"the target-aware mask compares teacher queries ({teacher.embed_dims} dims) with "
                              f"teacher neck features ({t_ch} channels): they must match")
        self.adapters = nn.ModuleList(build_adapter(self.adapter_kind, s_ch, t_ch)
                                      for _ in range(_num_levels(student)))

    def loss(self, student, teacher, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        gts, _, metas = unpack_gt_instances(data_samples)
        with torch.no_grad():  # first: its working memory is freed before the student's graph is built
            t_feats = teacher.extract_feat(inputs)
            t_dec_in, t_head_in = run_transformer(teacher, t_feats, data_samples)
            t_cls, t_box = head_outputs(teacher, t_head_in)
        s_feats = student.extract_feat(inputs)
        s_dec_in, s_head_in = run_transformer(student, s_feats, data_samples)
        s_all_cls, s_all_box = head_outputs(student, s_head_in)
        enc = tuple(s_head_in[k] for k in ("enc_outputs_class", "enc_outputs_coord") if k in s_head_in)
        dn = {"dn_meta": s_head_in["dn_meta"]} if "dn_meta" in s_head_in else {}
        losses = student.bbox_head.loss_by_feat(s_all_cls, s_all_box, *enc, gts, metas, **dn)  # no ignores
        s_cls, s_box = matching_part(s_all_cls, s_all_box, s_head_in)
        last = self.num_layers - 1
        # teacher boxes as pseudo targets: clamped to the image as in the released code (matching and targets)
        t_target_box = clamp_to_image(t_box) if self.clamp_teacher_boxes else t_box
        if self.logits_weight or self.contrastive_weight:
            s_hidden = matching_hidden(s_head_in["hidden_states"], s_head_in)
            for layer in range(self.num_layers):
                matches = self.logits.match(s_cls[layer], s_box[layer], t_cls[layer], t_target_box[layer], metas)
                if self.logits_weight:
                    terms = self.logits(s_cls[layer], s_box[layer], t_cls[layer], t_target_box[layer], metas, matches)
                    for name, value in terms.items():
                        losses[_layer_name(f"loss_kd_{name}", layer, last)] = self.logits_weight * value
                if self.contrastive_weight:  # released code: every layer, on the logits-distillation pairs
                    t_hidden = t_head_in["hidden_states"][layer]
                    s_q = torch.cat([s_hidden[layer, b, s_idx] for b, (s_idx, _) in enumerate(matches)])
                    t_q = torch.cat([t_hidden[b, t_idx] for b, (_, t_idx) in enumerate(matches)])
                    value = self.contrastive_weight * self.contrast(s_q, t_q)
                    losses[_layer_name("loss_kd_contrast", layer, last)] = value
        if self.feature_weight:
            per_layer = self._feature(s_feats, t_feats, t_cls, t_box, t_head_in["hidden_states"], gts, metas)
            losses.update(feature_terms(per_layer, self.feature_weight, self.feature_reduction))
        if self.query_weight:
            if self.query_prior == "released":
                q_dec_in = released_query_inputs(student, s_feats, data_samples, t_dec_in)
            else:
                q_dec_in = teacher_query_inputs(s_dec_in, t_dec_in)
            q_head_in = dict(student.forward_decoder(**q_dec_in))
            q_cls, q_box = head_outputs(student, q_head_in)
            for layer in range(self.num_layers):
                gt_inds = teacher_assignment(teacher.bbox_head, t_cls[layer], t_box[layer], gts, metas)
                terms = query_group_loss(student.bbox_head, q_cls[layer], q_box[layer], gt_inds, gts, metas)
                for name, value in terms.items():
                    losses[_layer_name(f"loss_qg_{name}", layer, last)] = self.query_weight * value
        return losses

    def _feature(self, s_feats, t_feats, t_cls, t_box, t_hidden, gts, metas) -> List[Tensor]:
        """Target-aware feature loss of every decoder layer (one mask per teacher layer)."""
        adapted = [adapter(f) for adapter, f in zip(self.adapters, s_feats)]
        per_layer = []
        for layer in range(self.num_layers):
            masks: List[List[Tensor]] = [[] for _ in t_feats]
            for b, (gt, meta) in enumerate(zip(gts, metas)):
                query, quality = query_quality(t_cls[layer, b], t_box[layer, b], gt.bboxes, meta, self.top_k)
                q = t_hidden[layer, b, query]
                for level, feat in enumerate(t_feats):
                    masks[level].append(target_aware_mask(q, quality, feat[b]))
            per_layer.append(masked_feature_loss(adapted, t_feats, masks))
        return per_layer


def _neck_channels(detector) -> int:
    neck = getattr(detector, "neck", None)
    channels = getattr(neck, "out_channels", None)
    return int(channels) if channels is not None else int(detector.embed_dims)


def _num_levels(detector) -> int:
    return int(getattr(detector, "num_feature_levels", 1) or 1)

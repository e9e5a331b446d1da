"""DETRDistill (Chang et al., ICCV 2023) for DETR-family detectors in mmdet (Deformable DETR, Conditional
DETR, DINO, DETR): Hungarian-matching logits distillation (:mod:`.matching`), target-aware feature distillation
(:mod:`.feature_mask`) and query-prior assignment distillation (:mod:`.query_group`), each at every decoder
layer (teacher layer l supervises student layer l) and each switched off by a zero weight.

Both detectors run mmdet's own transformer stages (``pre_transformer`` -> ``forward_encoder`` ->
``pre_decoder`` -> ``forward_decoder``) once; the student's ground-truth loss is its head's own
``loss_by_feat`` on that pass.

DINO: in training the student's decoder runs its contrastive denoising (CDN) queries before the matching
queries (``dn_meta['num_denoising_queries']`` of them, kept apart by DINO's attention mask). They have their
own ground-truth targets (DINO's denoising loss), so the three components use the matching part only, split
the way mmdet's ``DINOHead.split_outputs`` splits it; the frozen teacher runs in eval mode, without denoising
queries. The teacher-query group is the teacher's two-stage query prior (its content queries and the anchor
boxes its encoder selected, see :mod:`.query_group`).
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

from .feature_mask import masked_feature_loss, query_quality, target_aware_mask
from .matching import LogitsDistillation, TeacherMatcher
from .query_group import query_group_loss, teacher_assignment, teacher_query_inputs


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


def _layer_name(name: str, layer: int, last: int) -> str:
    return name if layer == last else f"d{layer}.{name}"


@MODELS.register_module()
class DETRDistill(nn.Module):
    """DETRDistill distiller; ``*_weight = 0`` switches a component off (ablations)."""

    method = "detrdistill"

    def __init__(self, logits_weight: float = 1.0, feature_weight: float = 1.0, query_weight: float = 1.0,
                 cls_weight: float = 1.0, l1_weight: float = 5.0, giou_weight: float = 2.0, top_k: int = 100,
                 adapter: str = "auto"):
        super().__init__()
        self.logits_weight, self.feature_weight = float(logits_weight), float(feature_weight)
        self.query_weight = float(query_weight)
        self.term_weights = (cls_weight, l1_weight, giou_weight)
        self.top_k, self.adapter_kind = top_k, adapter
        self.adapters = nn.ModuleList()

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
        self.num_layers = s_layers
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
        s_feats = student.extract_feat(inputs)
        s_dec_in, s_head_in = run_transformer(student, s_feats, data_samples)
        s_all_cls, s_all_box = head_outputs(student, s_head_in)
        enc = tuple(s_head_in[k] for k in ("enc_outputs_class", "enc_outputs_coord") if k in s_head_in)
        dn = {"dn_meta": s_head_in["dn_meta"]} if "dn_meta" in s_head_in else {}
        losses = student.bbox_head.loss_by_feat(s_all_cls, s_all_box, *enc, gts, metas, **dn)  # no ignores
        s_cls, s_box = matching_part(s_all_cls, s_all_box, s_head_in)
        with torch.no_grad():
            t_feats = teacher.extract_feat(inputs)
            t_dec_in, t_head_in = run_transformer(teacher, t_feats, data_samples)
            t_cls, t_box = head_outputs(teacher, t_head_in)
        last = self.num_layers - 1
        if self.logits_weight:
            for layer in range(self.num_layers):
                terms = self.logits(s_cls[layer], s_box[layer], t_cls[layer], t_box[layer], metas)
                for name, value in terms.items():
                    losses[_layer_name(f"loss_kd_{name}", layer, last)] = self.logits_weight * value
        if self.feature_weight:
            losses["loss_kd_feat"] = self.feature_weight * self._feature(
                s_feats, t_feats, t_cls, t_box, t_head_in["hidden_states"], gts, metas)
        if self.query_weight:
            q_dec_in = teacher_query_inputs(s_dec_in, t_dec_in)
            q_head_in = dict(student.forward_decoder(**q_dec_in))
            q_cls, q_box = head_outputs(student, q_head_in)
            for layer in range(self.num_layers):
                gt_inds = teacher_assignment(teacher.bbox_head, t_cls[layer], t_box[layer], gts, metas)
                terms = query_group_loss(student.bbox_head, q_cls[layer], q_box[layer], gt_inds, gts, metas)
                for name, value in terms.items():
                    losses[_layer_name(f"loss_qg_{name}", layer, last)] = self.query_weight * value
        return losses

    def _feature(self, s_feats, t_feats, t_cls, t_box, t_hidden, gts, metas) -> Tensor:
        """Target-aware feature loss averaged over decoder layers (one mask per teacher layer)."""
        adapted = [adapter(f) for adapter, f in zip(self.adapters, s_feats)]
        total = adapted[0].new_zeros(())
        for layer in range(self.num_layers):
            masks: List[List[Tensor]] = [[] for _ in t_feats]
            for b, (gt, meta) in enumerate(zip(gts, metas)):
                query, quality = query_quality(t_cls[layer, b], t_box[layer, b], gt.bboxes, meta, self.top_k)
                q = t_hidden[layer, b, query]
                for level, feat in enumerate(t_feats):
                    masks[level].append(target_aware_mask(q, quality, feat[b]))
            total = total + masked_feature_loss(adapted, t_feats, masks)
        return total / self.num_layers


def _neck_channels(detector) -> int:
    neck = getattr(detector, "neck", None)
    channels = getattr(neck, "out_channels", None)
    return int(channels) if channels is not None else int(detector.embed_dims)


def _num_levels(detector) -> int:
    return int(getattr(detector, "num_feature_levels", 1) or 1)

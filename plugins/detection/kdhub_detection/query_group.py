"""DETRDistill's query-prior assignment distillation: the teacher's queries as an extra student query group.

The student decoder runs a second time on its own memory, fed with the teacher's (frozen) query prior:
content and positional query embeddings and, where the detector has them, initial reference points. Each
decoder layer's predictions of that group are supervised with the TEACHER's Hungarian assignment of the same
queries to the ground truth at that layer (the teacher head's own assigner), using the student head's own
detection losses (focal classification, L1 and GIoU). This gives the student the teacher's stable,
well-converged query-to-object assignment early in training.

Two forms of the prior (``DETRDistill(query_prior=...)``):

* ``'teacher_queries'`` (kdhub's default, the paper's description): the teacher's decoder inputs as they are:
  its content and positional query embeddings and its own initial reference points, decoded on the memory of
  the student's single encoder pass (:func:`teacher_query_inputs`).
* ``'released'`` (the authors' released code): the teacher's query embeddings only; the student's transformer
  is run again from its neck features (encoder and decoder), and the initial reference points come from the
  STUDENT's own reference-point layer applied to the teacher's positional queries (Deformable DETR:
  ``sigmoid(reference_points_fc(query_pos))``; Conditional DETR's decoder derives them from ``query_pos`` with
  its own ``ref_point_head`` anyway; DETR has none) (:func:`released_query_inputs`). Detectors whose reference
  points are not a layer of the positional query (two-stage Deformable DETR, DINO) have no such form.

Two-stage DINO (``'teacher_queries'``): the prior is the teacher's content queries and the anchor boxes
(reference points) its own encoder selected (top-K proposals). The group has no denoising queries, so it runs
without DINO's denoising attention mask.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
from mmdet.models.detectors import DABDETR, DeformableDETR
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmengine.structures import InstanceData
from torch import Tensor

QUERY_KEYS = ("query", "query_pos", "reference_points")


def teacher_query_inputs(student_inputs: dict, teacher_inputs: dict) -> dict:
    """Student decoder inputs with the teacher's query prior put in place of the student's own."""
    out = dict(student_inputs)
    for key in QUERY_KEYS:
        if key in teacher_inputs and teacher_inputs[key] is not None and key in student_inputs:
            out[key] = teacher_inputs[key].detach()
    if "dn_mask" in out:  # DINO: the mask separates denoising groups, and this group has none
        out["dn_mask"] = None
    return out


def released_form_problem(detector) -> str:
    """Why the released form cannot apply to ``detector`` ('' when it can)."""
    name = type(detector).__name__
    if isinstance(detector, DeformableDETR) and (detector.as_two_stage or not hasattr(detector, "reference_points_fc")):
        return (f"{name} takes its initial reference points from the proposals its encoder selects (two-stage), "
                f"not from a layer on the positional query")
    if isinstance(detector, DABDETR):
        return f"{name} learns its reference boxes as query embeddings, not as a layer on the positional query"
    return ""


def released_query_inputs(student, s_feats, data_samples, teacher_inputs: dict) -> dict:
    """Decoder inputs of the released form: the student's transformer run again on its neck features
    ``s_feats`` (encoder, then its own ``pre_decoder`` for the memory and its masks), with the teacher's content
    and positional queries (frozen) in place of its own and, where the detector has them, initial reference
    points from the student's own reference-point layer on the teacher's positional queries."""
    enc_in, dec_in = student.pre_transformer(s_feats, data_samples)
    enc_out = student.forward_encoder(**enc_in)
    own, _ = student.pre_decoder(**enc_out)
    out = dict(dec_in)
    out.update(own)
    for key in ("query", "query_pos"):
        out[key] = teacher_inputs[key].detach()
    if "reference_points" in out:  # Deformable DETR (one-stage): its reference_points_fc on the positional query
        out["reference_points"] = student.reference_points_fc(out["query_pos"]).sigmoid()
    return out


@torch.no_grad()
def teacher_assignment(teacher_head, t_logits: Tensor, t_boxes: Tensor, gts: Sequence[InstanceData],
                       metas: Sequence[dict]) -> List[Tensor]:
    """Per image: ``gt_inds`` of the teacher's assignment (0 background, i+1 ground truth i) for one layer."""
    out = []
    for b, (gt, meta) in enumerate(zip(gts, metas)):
        h, w = meta["img_shape"][:2]
        pred = InstanceData(scores=t_logits[b], bboxes=bbox_cxcywh_to_xyxy(t_boxes[b]) * t_boxes.new_tensor([w, h, w, h]))
        out.append(teacher_head.assigner.assign(pred_instances=pred, gt_instances=gt, img_meta=meta).gt_inds)
    return out


def assigned_targets(gt_inds: Tensor, gt: InstanceData, meta: dict, num_classes: int) -> Tuple[Tensor, Tensor, Tensor]:
    """(labels [Q] with background = num_classes, normalised cxcywh box targets [Q, 4], box weights [Q, 4])."""
    num = len(gt_inds)
    pos = torch.nonzero(gt_inds > 0, as_tuple=False).squeeze(1)
    labels = gt_inds.new_full((num,), num_classes)
    targets = gt.bboxes.new_zeros((num, 4))
    weights = gt.bboxes.new_zeros((num, 4))
    if len(pos):
        assigned = gt_inds[pos] - 1
        labels[pos] = gt.labels[assigned]
        h, w = meta["img_shape"][:2]
        targets[pos] = bbox_xyxy_to_cxcywh(gt.bboxes[assigned] / gt.bboxes.new_tensor([w, h, w, h]))
        weights[pos] = 1.0
    return labels, targets, weights


def query_group_loss(student_head, s_logits: Tensor, s_boxes: Tensor, gt_inds: Sequence[Tensor],
                     gts: Sequence[InstanceData], metas: Sequence[dict]) -> Dict[str, Tensor]:
    """The detection loss of one layer of the teacher-query group under the teacher's assignment."""
    labels, targets, weights = zip(*(assigned_targets(g, gt, m, student_head.num_classes)
                                     for g, gt, m in zip(gt_inds, gts, metas)))
    labels, targets, weights = torch.cat(labels), torch.cat(targets), torch.cat(weights)
    num_pos = max(1.0, float((labels < student_head.num_classes).sum()))
    logits = s_logits.reshape(-1, s_logits.size(-1))
    loss_cls = student_head.loss_cls(logits, labels, torch.ones_like(labels, dtype=logits.dtype), avg_factor=num_pos)
    boxes = s_boxes.reshape(-1, 4)
    factors = torch.cat([boxes.new_tensor([m["img_shape"][1], m["img_shape"][0]] * 2).expand(s_boxes.size(1), 4)
                         for m in metas])
    loss_iou = student_head.loss_iou(bbox_cxcywh_to_xyxy(boxes) * factors, bbox_cxcywh_to_xyxy(targets) * factors,
                                     weights, avg_factor=num_pos)
    loss_bbox = student_head.loss_bbox(boxes, targets, weights, avg_factor=num_pos)
    return {"cls": loss_cls, "bbox": loss_bbox, "iou": loss_iou}

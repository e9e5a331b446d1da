"""One view of dense-head outputs (anchor-based RetinaNet-style heads and FCOS), per image and position.

GID compares teacher and student position by position, so both heads' outputs are flattened the way
mmdet's own ``predict_by_feat`` does (level, then y, x, anchor), boxes decoded with the head's own prior
generator and bbox coder, and positives found with the head's own target assignment applied to the general
instances as if they were ground truth. The RPN of a two-stage detector is such an anchor head too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
from mmdet.models.dense_heads import AnchorHead, FCOSHead
from mmdet.models.task_modules.prior_generators import anchor_inside_flags
from mmengine.structures import InstanceData
from torch import Tensor


@dataclass
class DenseOutputs:
    """Flattened outputs of one detector: ``logits`` [B, N, C], ``reg`` [B, N, R] (regression in the
    head's training units), ``boxes`` [B, N, 4] decoded xyxy pixels, ``centerness`` [B, N, 1] or None."""

    logits: Tensor
    reg: Tensor
    boxes: Tensor
    centerness: Optional[Tensor] = None


def supported(head) -> bool:
    return isinstance(head, (AnchorHead, FCOSHead))


def _flat(maps: Sequence[Tensor], channels: int) -> Tensor:
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.size(0), -1, channels) for m in maps], dim=1)


class DenseHeadView:
    """Flattening, decoding and GI-box target assignment for one dense head."""

    def __init__(self, head):
        if not supported(head):
            raise TypeError(f"{type(head).__name__} is not a supported dense head (AnchorHead family or FCOSHead)")
        self.head = head
        self.fcos = isinstance(head, FCOSHead)

    def featmap_sizes(self, outs) -> List[torch.Size]:
        return [m.shape[-2:] for m in outs[0]]

    def priors(self, outs) -> List[Tensor]:
        ref = outs[0][0]
        return self.head.prior_generator.grid_priors(self.featmap_sizes(outs), dtype=ref.dtype, device=ref.device)

    def flatten(self, outs, training: bool) -> DenseOutputs:
        """``outs``: the head's forward output. ``training``: whether the head ran in training mode (FCOS
        scales its distances by the stride only in eval mode)."""
        head = self.head
        logits = _flat(outs[0], head.cls_out_channels)
        priors = self.priors(outs)
        if self.fcos:
            strides = [s[0] for s in head.prior_generator.strides]
            reg_maps = [m if (training or not head.norm_on_bbox) else m / s for m, s in zip(outs[1], strides)]
            reg = _flat(reg_maps, 4)  # training units: distances / stride when norm_on_bbox
            scale = torch.cat([reg.new_full((p.size(0), 1), float(s) if head.norm_on_bbox else 1.0)
                               for p, s in zip(priors, strides)])
            points = torch.cat(priors)
            boxes = head.bbox_coder.decode(points[None].expand(reg.size(0), -1, -1), reg * scale[None])
            return DenseOutputs(logits, reg, boxes, _flat(outs[2], 1))
        reg = _flat(outs[1], head.bbox_coder.encode_size)
        anchors = torch.cat(priors)
        boxes = head.bbox_coder.decode(anchors[None].expand(reg.size(0), -1, -1).reshape(-1, 4),
                                       reg.reshape(-1, reg.size(-1)))
        boxes = getattr(boxes, "tensor", boxes).reshape(reg.size(0), -1, 4)
        return DenseOutputs(logits, reg, boxes)

    @torch.no_grad()
    def positives(self, outs, instances: List[InstanceData], img_metas: List[dict]) -> Tensor:
        """[B, N] mask of positions the head's own assignment makes positive for ``instances`` as ground truth
        (FCOS: its ``get_targets``; anchor heads, the RPN included: the head's ``assigner`` on the anchors
        inside the image, as ``AnchorHead.get_targets`` does, without its sampler)."""
        head = self.head
        num = len(instances)
        gts = [InstanceData(bboxes=i.bboxes.detach().float(), labels=i.labels.long()) for i in instances]
        if self.fcos:
            labels, _ = head.get_targets(self.priors(outs), gts)
            labels = torch.cat([lv.reshape(num, -1) for lv in labels], dim=1)
            return (labels >= 0) & (labels < head.num_classes)
        anchor_list, valid_list = head.get_anchors(self.featmap_sizes(outs), img_metas, device=outs[0][0].device)
        masks = []
        for anchors, valid, gt, meta in zip(anchor_list, valid_list, gts, img_metas):
            anchors, valid = torch.cat(anchors), torch.cat(valid)
            inside = anchor_inside_flags(anchors, valid, meta["img_shape"][:2], head.train_cfg["allowed_border"])
            mask = torch.zeros_like(inside)
            if len(gt) and inside.any():
                gt_inds = head.assigner.assign(InstanceData(priors=anchors[inside]), gt).gt_inds
                mask[torch.nonzero(inside, as_tuple=False).squeeze(1)] = gt_inds > 0
            masks.append(mask)
        return torch.stack(masks)

"""Tiny detection configs over a tiny embedded set, derived from the shipped configs by mmengine inheritance."""
import os
import subprocess
import sys
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "kdhub_detection" / "configs"
TINY_SPEC = "dict(image_size=64, train=16, val=4, test=4, max_objects=3, sizes=(10, 32), seed=0)"


def _data(spec: str = TINY_SPEC, batch: int = 4) -> str:
    return f"""
synth_spec = {spec}
train_dataloader = dict(batch_size={batch}, dataset=dict(spec=synth_spec))
val_dataloader = dict(batch_size={batch}, dataset=dict(spec=synth_spec))
test_dataloader = dict(batch_size={batch}, dataset=dict(spec=synth_spec))
val_evaluator = dict(spec=synth_spec)
test_evaluator = dict(spec=synth_spec)
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = []
default_hooks = dict(logger=dict(interval=1))
"""


def retinanet(tmp: Path, name: str, base: int = 8, fpn: int = 16, head: str = "RetinaHead") -> Path:
    """A tiny RetinaNet (or FCOS with ``head='FCOSHead'``) detector config."""
    head_cfg = f"bbox_head=dict(in_channels={fpn}, feat_channels={fpn}, stacked_convs=1)"
    if head == "FCOSHead":
        head_cfg = f"""type='FCOS', train_cfg=dict(_delete_=True), test_cfg=dict(nms_pre=100),
             bbox_head=dict(_delete_=True, type='FCOSHead', num_classes=5, in_channels={fpn},
             stacked_convs=1, feat_channels={fpn}, strides=[8, 16, 32, 64], norm_cfg=dict(type='GN', num_groups=8),
             regress_ranges=((-1, 16), (16, 32), (32, 64), (64, 1e8)), norm_on_bbox=True, centerness_on_reg=True,
             loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
             loss_bbox=dict(type='GIoULoss', loss_weight=1.0),
             loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0))"""
    text = f"_base_ = ['{CONFIGS / 'retinanet_r18w32_synth.py'}']\ntask = 'detection'\n" + _data() + f"""
model = dict(backbone=dict(base_channels={base}), neck=dict(in_channels=[{base * 2}, {base * 4}, {base * 8}],
             out_channels={fpn}), {head_cfg})
"""
    path = tmp / name
    path.write_text(text)
    return path


def faster_rcnn(tmp: Path, name: str, base: int = 8, fpn: int = 16, fc: int = 32) -> Path:
    """A tiny Faster R-CNN (the shipped synth config at tiny widths, 50 proposals per image)."""
    text = f"_base_ = ['{CONFIGS / 'faster_rcnn_r18w32_synth.py'}']\ntask = 'detection'\n" + _data() + f"""
model = dict(backbone=dict(base_channels={base}), neck=dict(in_channels=[{base * 2}, {base * 4}, {base * 8}],
             out_channels={fpn}), rpn_head=dict(in_channels={fpn}, feat_channels={fpn}),
             roi_head=dict(bbox_roi_extractor=dict(out_channels={fpn}),
                           bbox_head=dict(in_channels={fpn}, fc_out_channels={fc})),
             train_cfg=dict(rpn_proposal=dict(max_per_img=50)), test_cfg=dict(rpn=dict(max_per_img=50)))
"""
    path = tmp / name
    path.write_text(text)
    return path


def distill(tmp: Path, name: str, student: Path, teacher: Path, checkpoint, distiller: str) -> Path:
    text = f"""_base_ = ['{student}']
task = 'detection'
model = dict(_delete_=True, type='KDDistillDetector', student=_base_.model,
             teacher=dict(config='{teacher}', checkpoint={str(checkpoint)!r}), distiller={distiller})
"""
    path = tmp / name
    path.write_text(text)
    return path


def load(path: Path, overrides=()):
    from kdhub_detection.plugin import kdhub_load_config
    return kdhub_load_config(Path(path), list(overrides))


def run_cli(args, check=True, prefix=None, env=None):
    cmd = (prefix or [sys.executable, "-m", "kdhub"]) + [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "KDHUB_PROGRESS": "0", "OMP_NUM_THREADS": "1", **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def deformable_detr(tmp: Path, name: str, base: int = 8, encoder_layers: int = 1, decoder_layers: int = 2,
                    detector: str = "DeformableDETR") -> Path:
    """A tiny Deformable DETR (32-d transformer, 8 queries); ``detector='ConditionalDETR'`` or ``'DINO'`` (the
    shipped DINO config at the same tiny sizes, up to 6 denoising queries) for those families."""
    if detector == "ConditionalDETR":  # mmdet 3.3's ConditionalDETR decoder assumes 256-d queries
        model = f"""model = dict(_delete_=True, type='ConditionalDETR', num_queries=8,
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=18, base_channels={base}, num_stages=4, out_indices=(3, ),
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch'),
    neck=dict(type='ChannelMapper', in_channels=[{base * 8}], kernel_size=1, out_channels=256, act_cfg=None,
              norm_cfg=None, num_outs=1),
    encoder=dict(num_layers={encoder_layers}, layer_cfg=dict(
        self_attn_cfg=dict(embed_dims=256, num_heads=4, dropout=0.0, batch_first=True),
        ffn_cfg=dict(embed_dims=256, feedforward_channels=256, num_fcs=2, ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True)))),
    decoder=dict(num_layers={decoder_layers}, layer_cfg=dict(
        self_attn_cfg=dict(embed_dims=256, num_heads=4, attn_drop=0.0, proj_drop=0.0, cross_attn=False),
        cross_attn_cfg=dict(embed_dims=256, num_heads=4, attn_drop=0.0, proj_drop=0.0, cross_attn=True),
        ffn_cfg=dict(embed_dims=256, feedforward_channels=256, num_fcs=2, ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True))),
        return_intermediate=True),
    positional_encoding=dict(num_feats=128, normalize=True),
    bbox_head=dict(type='ConditionalDETRHead', num_classes=5, embed_dims=256,
                   loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
                   loss_bbox=dict(type='L1Loss', loss_weight=5.0), loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[
        dict(type='FocalLossCost', weight=2.0), dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='IoUCost', iou_mode='giou', weight=2.0)])),
    test_cfg=dict(max_per_img=8))
"""
    elif detector == "DINO":  # mmdet 3.3's DINO decoder assumes 256-d queries (the shipped DINO configs' width)
        model = f"""model = dict(num_queries=8, backbone=dict(base_channels={base}),
    neck=dict(in_channels=[{base * 2}, {base * 4}, {base * 8}]),
    encoder=dict(num_layers={encoder_layers}, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=128))),
    decoder=dict(num_layers={decoder_layers}, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=128))),
    test_cfg=dict(max_per_img=8), dn_cfg=dict(group_cfg=dict(num_dn_queries=6)))
"""
    else:
        model = f"""model = dict(num_queries=8, backbone=dict(base_channels={base}),
    neck=dict(in_channels=[{base * 2}, {base * 4}, {base * 8}], out_channels=32),
    encoder=dict(num_layers={encoder_layers}, layer_cfg=dict(self_attn_cfg=dict(embed_dims=32),
                 ffn_cfg=dict(embed_dims=32, feedforward_channels=64))),
    decoder=dict(num_layers={decoder_layers}, layer_cfg=dict(self_attn_cfg=dict(embed_dims=32),
                 cross_attn_cfg=dict(embed_dims=32), ffn_cfg=dict(embed_dims=32, feedforward_channels=64))),
    positional_encoding=dict(num_feats=16), bbox_head=dict(embed_dims=32), test_cfg=dict(max_per_img=8))
"""
    parent = "dino_r18w32_synth.py" if detector == "DINO" else "deformable_detr_r18w32_synth.py"
    text = f"_base_ = ['{CONFIGS / parent}']\ntask = 'detection'\n" + _data() + model
    path = tmp / name
    path.write_text(text)
    return path

# Student (and baseline) for GID on the embedded set: RetinaNet, ResNet-18 at quarter width (base 16), FPN 64.
# Same anchors, schedule and seed as the teacher.
_base_ = ['./retinanet_r18w32_synth.py']
task = 'detection'
base = 16
fpn = 64
model = dict(
    backbone=dict(base_channels=base),
    neck=dict(in_channels=[base * 2, base * 4, base * 8], out_channels=fpn),
    bbox_head=dict(in_channels=fpn, feat_channels=fpn))

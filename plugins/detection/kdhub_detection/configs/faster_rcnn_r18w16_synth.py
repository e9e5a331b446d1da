# Student (and baseline) for GID on Faster R-CNN: ResNet-18 at quarter width (base 16), FPN 64, 128-d RoI head.
# Same anchors, RoI levels, schedule and seed as the teacher.
_base_ = ['./faster_rcnn_r18w32_synth.py']
task = 'detection'
base = 16
fpn = 64
fc = 128
model = dict(
    backbone=dict(base_channels=base),
    neck=dict(in_channels=[base * 2, base * 4, base * 8], out_channels=fpn),
    rpn_head=dict(in_channels=fpn, feat_channels=fpn),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=fpn), bbox_head=dict(in_channels=fpn, fc_out_channels=fc)))

# Student (and baseline) for DETRDistill on the embedded set: the teacher's transformer width, decoder depth and
# queries (DETRDistill pairs decoder layer l with layer l and feeds teacher queries to the student decoder) on a
# quarter-width ResNet-18 with 2 encoder layers; same schedule and seed.
_base_ = ['./deformable_detr_r18w32_synth.py']
task = 'detection'
base = 16
model = dict(
    backbone=dict(base_channels=base),
    neck=dict(in_channels=[base * 2, base * 4, base * 8]),
    encoder=dict(num_layers=2))

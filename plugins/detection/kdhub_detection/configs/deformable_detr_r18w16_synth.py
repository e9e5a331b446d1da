# Student (and baseline) for DETRDistill on the embedded set: Deformable DETR on a quarter-width ResNet-18.
# It has the teacher's transformer width, decoder depth and queries (DETRDistill pairs decoder layer l with layer
# l and feeds teacher queries to the student decoder) with 2 encoder layers. Students train for a third of the
# teacher's schedule (8 epochs; the baseline and the distilled students share it and the seed).
_base_ = ['./deformable_detr_r18w32_synth.py']
task = 'detection'
base = 16
model = dict(
    backbone=dict(base_channels=base),
    neck=dict(in_channels=[base * 2, base * 4, base * 8]),
    encoder=dict(num_layers=2))

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[7], gamma=0.1),
]

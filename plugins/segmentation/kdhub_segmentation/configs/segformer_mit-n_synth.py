# The student alone on the embedded data (the baseline): "MiT-N", about 7x fewer parameters than the teacher.
# Half of MiT-T's widths (16, 32, 80, 128), one block per stage and a 64-channel head, trained from scratch for
# 1000 iterations of 8 images on a labelled subset: the first 100 images of the train split. The teacher learns
# from all 2000: as in TransKD's setting, where the teacher brings knowledge (ImageNet pre-training) that the
# non-pretrained student's labels do not, and a from-scratch transformer student is short of data.
task = 'segmentation'
_base_ = ['./_base_/segformer_synth.py', './_base_/synth_data.py', './_base_/synth_runtime.py']
crop_size = (64, 64)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(embed_dims=16, num_layers=[1, 1, 1, 1]),
    decode_head=dict(in_channels=[16, 32, 80, 128], channels=64))
train_dataloader = dict(dataset=dict(indices=100))
iters = 1000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=50, end=iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=1))

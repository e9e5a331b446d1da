# The teacher on the embedded data: "MiT-T" (_base_/segformer_synth.py), trained from scratch.
# No pretrained weights exist offline; 1500 iterations of 8 images over the whole 2000-image train split.
#   kdhub train segmentation::segformer_mit-t_synth.py --work-dir work_dirs/teacher
# writes work_dirs/teacher/model_mmseg.pth, a plain mmseg checkpoint usable as model.teacher.checkpoint.
task = 'segmentation'
_base_ = ['./_base_/segformer_synth.py', './_base_/synth_data.py', './_base_/synth_runtime.py']
crop_size = (64, 64)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
iters = 1500
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=100, end=iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=1))

# `kdhub demo detection`: GID from a RetinaNet R18/w32 teacher to R18/w16 on the embedded shapes set.
# A 6-epoch schedule (the teacher's, demo_retinanet_r18w32_synth.py, is the same). One `kdhub train` runs the
# whole pipeline: the teacher (trained here: no checkpoint given), the baseline student and the GID student,
# with the same schedule and seed.
_base_ = ['./gid_retinanet_r18w32_r18w16_synth.py']
task = 'detection'
baseline = True
model = dict(teacher=dict(config='demo_retinanet_r18w32_synth.py', checkpoint=None))
max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[5], gamma=0.1),
]

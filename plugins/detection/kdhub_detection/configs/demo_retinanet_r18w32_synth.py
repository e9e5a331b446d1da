# The teacher of `kdhub demo detection`: retinanet_r18w32_synth.py on the demo's shorter schedule (6 epochs).
_base_ = ['./retinanet_r18w32_synth.py']
task = 'detection'
max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[5], gamma=0.1),
]

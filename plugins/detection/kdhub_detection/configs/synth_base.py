# Data, evaluation and runtime shared by the embedded-set configs: the synthetic shapes set, 128 px images.
# Generated on first use into $KDHUB_DATA_DIR/detection; COCO AP on the val split during training and on the test
# split at the end. Schedules live in each detector's config.
custom_imports = dict(imports=['kdhub_detection.register'], allow_failed_imports=False)
default_scope = 'mmdet'

synth_spec = dict(image_size=128, train=600, val=100, test=200, seed=0)
image_size = 128
classes = ('circle', 'square', 'triangle', 'ring', 'cross')

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type='SynthShapesDataset', split='train', spec=synth_spec, filter_cfg=dict(filter_empty_gt=True),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SynthShapesDataset', split='val', spec=synth_spec, test_mode=True, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SynthShapesDataset', split='test', spec=synth_spec, test_mode=True, pipeline=test_pipeline))
val_evaluator = dict(type='SynthCocoMetric', split='val', spec=synth_spec, metric='bbox')
test_evaluator = dict(type='SynthCocoMetric', split='test', spec=synth_spec, metric='bbox')

val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, backend_args=dict(backend='kdhub_atomic')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=25, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)

# Teacher for DETRDistill on the embedded set: a small Deformable DETR, trained from scratch.
# ResNet-18 at half width, 3 feature levels, 64-d transformer with 3 encoder and 3 decoder layers, 20 queries. DETR
# training is slow on CPU, so this family uses a lighter copy of the set: 96 px images, up to 4 objects of 12-44 px.
_base_ = ['./synth_base.py']
task = 'detection'
synth_spec = dict(image_size=96, train=400, val=100, test=200, max_objects=4, sizes=(12, 44), seed=0)
image_size = 96
train_dataloader = dict(dataset=dict(spec=synth_spec, pipeline=[
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True), dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]))
test_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
val_dataloader = dict(dataset=dict(spec=synth_spec, pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(spec=synth_spec, pipeline=test_pipeline))
val_evaluator = dict(spec=synth_spec)
test_evaluator = dict(spec=synth_spec)
base = 32
dims = 64
levels = 3
model = dict(
    type='DeformableDETR', num_queries=20, num_feature_levels=levels, with_box_refine=False, as_two_stage=False,
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=18, base_channels=base, num_stages=4, out_indices=(1, 2, 3),
                  frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch'),
    neck=dict(type='ChannelMapper', in_channels=[base * 2, base * 4, base * 8], kernel_size=1, out_channels=dims,
              act_cfg=None, norm_cfg=dict(type='GN', num_groups=8), num_outs=levels),
    encoder=dict(num_layers=3, layer_cfg=dict(
        self_attn_cfg=dict(embed_dims=dims, num_levels=levels, num_heads=4, num_points=4, batch_first=True),
        ffn_cfg=dict(embed_dims=dims, feedforward_channels=dims * 4, ffn_drop=0.0))),
    decoder=dict(num_layers=3, return_intermediate=True, layer_cfg=dict(
        self_attn_cfg=dict(embed_dims=dims, num_heads=4, dropout=0.0, batch_first=True),
        cross_attn_cfg=dict(embed_dims=dims, num_levels=levels, num_heads=4, num_points=4, batch_first=True),
        ffn_cfg=dict(embed_dims=dims, feedforward_channels=dims * 4, ffn_drop=0.0)), post_norm_cfg=None),
    positional_encoding=dict(num_feats=dims // 2, normalize=True, offset=-0.5),
    bbox_head=dict(type='DeformableDETRHead', num_classes=5, embed_dims=dims, sync_cls_avg_factor=True,
                   loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
                   loss_bbox=dict(type='L1Loss', loss_weight=5.0), loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[
        dict(type='FocalLossCost', weight=2.0), dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='IoUCost', iou_mode='giou', weight=2.0)])),
    test_cfg=dict(max_per_img=20))

max_epochs = 24
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=6)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=5e-4, weight_decay=1e-4),
                     clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[20], gamma=0.1),
]

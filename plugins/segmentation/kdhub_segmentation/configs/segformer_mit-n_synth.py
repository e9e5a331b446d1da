# The student alone on the embedded data (the baseline): "MiT-N", a SegFormer with half of MiT-B0's widths
# (16, 32, 80, 128) and one block per stage, trained from scratch with the student budget of the demo.
task = 'segmentation'
_base_ = ['./_base_/synth_data.py', './_base_/synth_runtime.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='MixVisionTransformer', in_channels=3, embed_dims=16, num_stages=4, num_layers=[1, 1, 1, 1],
        num_heads=[1, 2, 5, 8], patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3),
        mlp_ratio=4, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.1),
    decode_head=dict(
        type='SegformerHead', in_channels=[16, 32, 80, 128], in_index=[0, 1, 2, 3], channels=64,
        dropout_ratio=0.1, num_classes=10, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
iters = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=50, end=iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=200)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=200, max_keep_ckpts=1))

# The teacher on the embedded data: "MiT-T", a SegFormer with MiT-B0's widths (32, 64, 160, 256) and depths
# (2 blocks per stage), trained from scratch (no pretrained weights exist offline) for 3000 iterations.
#   kdhub train configs/segformer_mit-t_synth.py --work-dir work_dirs/teacher
# writes work_dirs/teacher/model_mmseg.pth, a plain mmseg checkpoint usable as model.teacher_checkpoint.
task = 'segmentation'
_base_ = ['./_base_/synth_data.py', './_base_/synth_runtime.py']
norm_cfg = dict(type='BN', requires_grad=True)  # BN, not SyncBN: CPU runs and CPU DDP (gloo) work
model = dict(
    type='EncoderDecoder',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='MixVisionTransformer', in_channels=3, embed_dims=32, num_stages=4, num_layers=[2, 2, 2, 2],
        num_heads=[1, 2, 5, 8], patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3),
        mlp_ratio=4, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.1),
    decode_head=dict(
        type='SegformerHead', in_channels=[32, 64, 160, 256], in_index=[0, 1, 2, 3], channels=128,
        dropout_ratio=0.1, num_classes=10, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
iters = 3000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=100, end=iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=1))

# TransKD's student (SegFormer MiT-B0) alone on Cityscapes as the TransKD authors' scripts train it.
# TransKD's student alone on Cityscapes (SegFormer MiT-B0, not ImageNet-pretrained), trained the way the TransKD
# authors' released training scripts train it, built from mmseg transforms plus two of kdhub's (RandomShift,
# DownsampleSegMap) and kdhub's ClassWeightedNLLLoss:
# - the whole image resized to 512 x 1024 with PIL's bilinear filter (theirs: shorter side to 512, which is
#   512 x 1024 for Cityscapes' 1024 x 2048 frames); no crops, no rescaling, no photometric distortion;
# - labels at the model's output resolution, 128 x 256 (a quarter of the image, rounded half up), resized from the
#   full-resolution train-id map with PIL's nearest-neighbour rule, so logits and labels meet without upsampling;
# - horizontal flip with probability 0.5, then a shift of -2..2 px in x and y (RandomShift: image filled with 0,
#   labels with 255 on the top/left and 0 on the bottom/right, as their expand-then-crop does; the label moves by the
#   same number of its own, quarter-resolution, pixels);
# - no mean/std normalisation: their ToTensor only scales to [0, 1], here mean 0 and std 255 on RGB;
# - 20 output classes, the 19 Cityscapes classes plus a 'void' class of weight 0, and their class-weighted NLL of the
#   log-softmax averaged over the labelled pixels' weights (mmseg 1.2.2's CrossEntropyLoss with class weights stops
#   with an IndexError on the 255 ignore label);
# - batch 2 on one GPU, AdamW lr 6e-5, betas (0.9, 0.999), eps 1e-8, weight decay 0.01 on every parameter (no
#   per-parameter multipliers), poly decay with power 1 stepped once per epoch towards 0 at epoch 1500, stopped after
#   1000 epochs (their scheduler takes its first step when it is built, so their epoch e uses 6e-5 x (1 - e/1500) and
#   this one 6e-5 x (1 - (e-1)/1500)); validation after every epoch, the best val mIoU kept;
# - the last batch of an epoch is dropped (2975 training images): TransKD's CSF needs two images per batch.
# Evaluation is mmseg's, at the label files' full resolution with the logits upsampled; the authors measured at the
# 128 x 256 label resolution. For users who have Cityscapes under data/cityscapes, prepared as mmseg documents:
#   kdhub train segmentation::segformer_mit-b0_cityscapes-512x1024_authors.py
task = 'segmentation'
_base_ = [
    'mmseg::_base_/models/segformer_mit-b0.py', 'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['kdhub_segmentation.mm'], allow_failed_imports=False)
image_size = (512, 1024)
# Per-class weights of the authors' training scripts, Cityscapes train-id order (road ... bicycle), then 'void'.
class_weight = [
    2.5959737, 6.741505, 3.5353868, 9.866315, 9.690922, 9.369371, 10.289124, 9.953209, 4.3098087, 9.490392,
    7.674411, 9.396925, 10.347794, 6.3928986, 10.226673, 10.241072, 10.28059, 10.396977, 10.05567, 0.0
]
data_preprocessor = dict(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], bgr_to_rgb=True, size=image_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        num_classes=20,
        loss_decode=dict(_delete_=True, type='ClassWeightedNLLLoss', class_weight=class_weight, loss_weight=1.0)),
    test_cfg=dict(mode='whole'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1024, 512), keep_ratio=False, backend='pillow', interpolation='bilinear'),
    dict(type='LoadAnnotations'),
    dict(type='DownsampleSegMap', factor=4, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomShift', max_shift=2, pad_val=0, seg_pad_val=(255, 0)),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1024, 512), keep_ratio=False, backend='pillow', interpolation='bilinear'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01))
param_scheduler = [dict(type='PolyLR', power=1.0, eta_min=0.0, begin=0, end=1500, by_epoch=True)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1000, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=True),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=1, save_best='mIoU'))
log_processor = dict(by_epoch=True)

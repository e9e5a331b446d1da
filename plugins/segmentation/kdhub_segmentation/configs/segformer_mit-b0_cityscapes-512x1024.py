# TransKD's student (SegFormer MiT-B0) alone on Cityscapes with mmseg's own recipe.
# TransKD's student alone on Cityscapes: SegFormer MiT-B0, not ImageNet-pretrained (as in the paper), trained with
# mmseg's own Cityscapes recipe: images rescaled by 0.5-2 and cropped to 512 x 1024, flip and photometric
# distortion, ImageNet mean/std, unweighted cross-entropy, sliding-window test; AdamW lr 6e-5, weight decay 0.01,
# poly decay over 160k iterations. This is an mmseg-native recipe, not the TransKD authors' (that one is
# segformer_mit-b0_cityscapes-512x1024_authors.py). For users who have Cityscapes under data/cityscapes, prepared as
# mmseg documents. 8 images per step: 4 GPUs x 2 (TransKD's CSF needs at least 2 per GPU).
#   torchrun --nproc_per_node 4 -m kdhub train segmentation::segformer_mit-b0_cityscapes-512x1024.py --launcher pytorch
task = 'segmentation'
_base_ = [
    'mmseg::_base_/models/segformer_mit-b0.py', 'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py'
]
custom_imports = dict(imports=['kdhub_segmentation.mm'], allow_failed_imports=False)
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=19),
    test_cfg=dict(mode='slide', crop_size=(512, 1024), stride=(384, 768)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'pos_block': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),
        'head': dict(lr_mult=10.)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
train_dataloader = dict(batch_size=2, num_workers=4)
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader

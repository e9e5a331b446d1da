# The DETRDistill teacher for DINO on COCO: mmdet's 4-scale DINO recipe with a ResNet-101 backbone.
_base_ = ['mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py']
task = 'detection'
model = dict(backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))

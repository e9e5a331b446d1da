# The DETRDistill teacher on COCO: mmdet's Deformable DETR recipe with a ResNet-101 backbone.
_base_ = ['mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py']
task = 'detection'
model = dict(backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))

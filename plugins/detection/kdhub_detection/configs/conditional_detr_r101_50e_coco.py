# The DETRDistill teacher for Conditional DETR on COCO: mmdet's recipe with a ResNet-101 backbone.
_base_ = ['mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py']
task = 'detection'
model = dict(backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))

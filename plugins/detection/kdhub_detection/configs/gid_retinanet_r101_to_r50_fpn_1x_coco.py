# GID on COCO (the paper's setting): RetinaNet R101-FPN teacher -> RetinaNet R50-FPN student, 1x schedule.
# Needs COCO under data/coco (mmdet's layout) and a trained teacher, e.g. mmdet's released
# retinanet_r101_fpn_1x_coco checkpoint (set model.teacher.checkpoint). The student's backbone starts from
# torchvision's ImageNet ResNet-50 as in mmdet's recipe (downloaded by mmengine on first use).
# Published: student 36.2 -> 39.1 AP with GID (teacher 38.1 AP).
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']
task = 'detection'
baseline = False  # True: also train the student alone (WORK_DIR/baseline) with the same schedule and seed
custom_imports = dict(imports=['kdhub_detection.register'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(type='KDHubCocoDataset', on_bad='error'))
model = dict(
    _delete_=True,
    type='KDDistillDetector',
    student=_base_.model,
    teacher=dict(config='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py',
                 checkpoint='checkpoints/retinanet_r101_fpn_1x_coco.pth'),
    # feature_weight: the released code's default 0.005 on its per-grid-cell feature loss (its experiment files
    # set 0.0005); 10 x 10 RoI grid, relation over the batch, canonical RoI levels (224 px at P4 of P3-P7)
    distiller=dict(type='GID', feature_weight=0.005, relation_weight=40.0, response_weight=0.1,
                   regression_weight=0.1, iou_threshold=0.3, top_k=10))

# GID on a two-stage detector on COCO: Faster R-CNN R101-FPN teacher -> Faster R-CNN R50-FPN student, 1x schedule.
# Both are mmdet's recipes. Needs COCO under data/coco and a trained teacher, e.g. mmdet's released
# faster_rcnn_r101_fpn_1x_coco checkpoint (set model.teacher.checkpoint). GID's feature/relation weights are the
# released code's; the response weights follow the RetinaNet recipe (the paper's two-stage weights are not restated
# here).
# Reported for GID with Faster R-CNN R50 on COCO: about 40.2 AP (teacher R101 39.8, student 38.4, 2x schedule, as
# quoted in later papers' comparison tables; uncertain).
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
task = 'detection'
baseline = False  # True: also train the student alone (WORK_DIR/baseline) with the same schedule and seed
custom_imports = dict(imports=['kdhub_detection.register'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(type='KDHubCocoDataset', on_bad='error'))
model = dict(_delete_=True, type='KDDistillDetector', student=_base_.model,
             teacher=dict(config='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
                          checkpoint='checkpoints/faster_rcnn_r101_fpn_1x_coco.pth'),
             # feature loss and its weight as the released (RetinaNet) code defines them; canonical RoI levels on
             # the RoI head's P2-P5 (there the same levels as the RoI head's own finest_scale=56)
             distiller=dict(type='GID', feature_weight=0.005, relation_weight=40.0, response_weight=0.1,
                            regression_weight=0.1, rpn_weight=1.0, iou_threshold=0.3, top_k=10))

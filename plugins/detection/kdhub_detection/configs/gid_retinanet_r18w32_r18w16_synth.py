# GID on the embedded set: RetinaNet ResNet-18/w32 teacher -> ResNet-18/w16 student.
# Same anchors, schedule and seed as the baseline retinanet_r18w16_synth.py.
# `kdhub train` of this config trains the teacher first (WORK_DIR/teacher, from model.teacher.config); to
# distil from a trained one instead, pass --cfg-options model.teacher.checkpoint=work_dirs/gid_teacher/student.pth.
_base_ = ['./retinanet_r18w16_synth.py']
task = 'detection'
baseline = False  # True: also train the student alone (WORK_DIR/baseline) with the same schedule and seed
model = dict(
    _delete_=True,
    type='KDDistillDetector',
    student=_base_.model,
    teacher=dict(config='retinanet_r18w32_synth.py', checkpoint=None),
    distiller=dict(
        type='GID',
        # Feature and relation terms as in the authors' released code (its default weights). This config used
        # feature_weight=2e-4 when the loss was a per-instance sum over a 7 x 7 grid: 2e-4 x 49 = 9.8e-3 per grid
        # cell, so the released 0.005 on the per-cell loss is about half that scale, the same order.
        feature_weight=0.005,  # squared error of 10 x 10 RoIAlign features on GI boxes / (instances x 10 x 10)
        relation_weight=40.0,  # RKD distance between all the batch's GI instance features
        response_weight=1.0,   # BCE to the teacher's sigmoid scores on GI-assigned positives
        regression_weight=1.0,  # L1 to the teacher's box deltas on the same positives
        # RoI level by the canonical FPN rule (224 px at P4), as in the released code: the 12-56 px objects here
        # all pool from P3, where boxes of those sizes go there on COCO too.
        iou_threshold=0.3, top_k=10))

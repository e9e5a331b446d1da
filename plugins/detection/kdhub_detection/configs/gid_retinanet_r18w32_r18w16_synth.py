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
        # The paper's weights (feature 5e-3, relation 40) are for 256-channel COCO FPN features; our narrow FPNs
        # trained from scratch have larger activations, so the feature weight is scaled down to keep each term
        # comparable with the detection loss at the start of training.
        feature_weight=2e-4,   # RoIAlign features on GI boxes, summed squared error per instance
        relation_weight=40.0,  # RKD distance between GI instance features
        response_weight=1.0,   # BCE to the teacher's sigmoid scores on GI-assigned positives
        regression_weight=1.0,  # L1 to the teacher's box deltas on the same positives
        iou_threshold=0.3, top_k=10,
        finest_scale=16))      # RoI level by box size: < 32 px -> P3, < 64 px -> P4 ...

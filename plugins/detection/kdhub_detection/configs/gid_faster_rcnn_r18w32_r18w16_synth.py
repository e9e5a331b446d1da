# GID on a two-stage detector (embedded set): Faster R-CNN ResNet-18/w32 teacher -> ResNet-18/w16 student.
# Same anchors, schedule and seed as the baseline faster_rcnn_r18w16_synth.py. GISM compares both RoI heads' class
# scores on the same proposals (the student's and the teacher's); the response terms are the RoI head's (softmax KD
# of class logits, L1 of box deltas) and the RPN's (objectness BCE, delta L1) on the GI boxes' positives.
# `kdhub train` of this config trains the teacher first (WORK_DIR/teacher, from model.teacher.config); to
# distil from a trained one instead, pass --cfg-options model.teacher.checkpoint=work_dirs/frcnn_teacher/student.pth.
_base_ = ['./faster_rcnn_r18w16_synth.py']
task = 'detection'
baseline = False  # True: also train the student alone (WORK_DIR/baseline) with the same schedule and seed
model = dict(_delete_=True, type='KDDistillDetector', student=_base_.model,
             teacher=dict(config='faster_rcnn_r18w32_synth.py', checkpoint=None),
             # feature and relation as for RetinaNet on the same FPN widths (the released code's default weights and
             # forms, the canonical RoI level rule on the RoI head's levels P3-P5); response: RoI-head class KD
             # (T = 1) and RPN objectness BCE, regression: L1 of RoI-head deltas (GI class) and RPN deltas, on the
             # GI boxes' positives
             distiller=dict(type='GID', feature_weight=0.005, relation_weight=40.0, response_weight=1.0,
                            regression_weight=1.0, rpn_weight=1.0, iou_threshold=0.3, top_k=10))

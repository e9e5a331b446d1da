# DETRDistill on DINO (embedded set): DINO ResNet-18/w32 teacher -> ResNet-18/w16 student.
# Same transformer width, decoder depth, queries, schedule and seed as the baseline dino_r18w16_synth.py. The three
# components act on the student's matching queries only (its denoising queries keep DINO's own denoising loss);
# the teacher-query group is the teacher's two-stage query prior (content queries + the anchor boxes its encoder
# selected). feature_weight multiplies the sum of the per-decoder-layer feature losses (released code); the
# contrastive term on matched queries (contrastive_weight, 0.2 by default) is on as in the released config.
# `kdhub train` of this config trains the teacher first (WORK_DIR/teacher, from model.teacher.config); to
# distil from a trained one instead, pass --cfg-options model.teacher.checkpoint=work_dirs/dino_teacher/student.pth.
_base_ = ['./dino_r18w16_synth.py']
task = 'detection'
baseline = False  # True: also train the student alone (WORK_DIR/baseline) with the same schedule and seed
model = dict(_delete_=True, type='KDDistillDetector', student=_base_.model,
             teacher=dict(config='dino_r18w32_synth.py', checkpoint=None),
             distiller=dict(type='DETRDistill', logits_weight=1.0, feature_weight=20.0, query_weight=1.0, top_k=30))

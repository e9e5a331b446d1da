# DETRDistill for DINO on COCO: 4-scale DINO R101 teacher -> R50 student, 12 epochs (mmdet's recipe).
# The three components act on the student's matching queries; its denoising queries keep DINO's own loss. The
# DETRDistill paper reports no DINO numbers; train the R101 teacher first (dino_r101_12e_coco.py) and set
# model.teacher.checkpoint.
_base_ = ['mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py']
task = 'detection'
baseline = False  # True: also train the student alone (WORK_DIR/baseline) with the same schedule and seed
custom_imports = dict(imports=['kdhub_detection.register'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(type='KDHubCocoDataset', on_bad='error'))
model = dict(_delete_=True, type='KDDistillDetector', student=_base_.model,
             teacher=dict(config='dino_r101_12e_coco.py', checkpoint='checkpoints/dino-4scale_r101_8xb2-12e_coco.pth'),
             distiller=dict(type='DETRDistill', logits_weight=1.0, feature_weight=1.0, query_weight=1.0,
                            contrastive_weight=0.2, top_k=100))

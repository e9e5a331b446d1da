# DETRDistill for Conditional DETR on COCO: R101 teacher -> R50 student, 50 epochs (mmdet's recipe).
# Published: student 40.7 -> 42.9 AP (teacher 42.4).
_base_ = ['mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py']
task = 'detection'
baseline = False  # True: also train the student alone (WORK_DIR/baseline) with the same schedule and seed
custom_imports = dict(imports=['kdhub_detection.register'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(type='KDHubCocoDataset', on_bad='error'))
model = dict(
    _delete_=True,
    type='KDDistillDetector',
    student=_base_.model,
    teacher=dict(config='conditional_detr_r101_50e_coco.py',
                 checkpoint='checkpoints/conditional-detr_r101_8xb2-50e_coco.pth'),
    distiller=dict(type='DETRDistill', logits_weight=1.0, feature_weight=1.0, query_weight=1.0,
                   contrastive_weight=0.2, top_k=100))

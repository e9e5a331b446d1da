# DETRDistill on COCO (the paper's setting): Deformable DETR R101 teacher -> R50 student, 50 epochs.
# AdamW 2e-4, weight decay 1e-4, gradient clipping 0.1 (mmdet's recipe, which the paper's code follows).
# The R101 teacher config derives from mmdet's R50 one; train it first (or convert a released checkpoint) and set
# model.teacher.checkpoint. Published: student 44.1 -> 46.6 AP (teacher 44.8-45.5).
_base_ = ['mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py']
task = 'detection'
baseline = False  # True: also train the student alone (WORK_DIR/baseline) with the same schedule and seed
custom_imports = dict(imports=['kdhub_detection.register'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(type='KDHubCocoDataset', on_bad='error'))
model = dict(
    _delete_=True,
    type='KDDistillDetector',
    student=_base_.model,
    teacher=dict(config='deformable_detr_r101_50e_coco.py',
                 checkpoint='checkpoints/deformable-detr_r101_16xb2-50e_coco.pth'),
    distiller=dict(type='DETRDistill', logits_weight=1.0, feature_weight=1.0, query_weight=1.0,
                   contrastive_weight=0.2, top_k=100))

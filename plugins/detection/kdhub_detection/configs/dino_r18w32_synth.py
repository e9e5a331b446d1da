# Teacher for DETRDistill on DINO (embedded set): the Deformable DETR teacher as mmdet's DINO (dino_synth_model.py).
# Its backbone, 3 feature levels, 3 encoder / 3 decoder layers, 20 queries, data and 24-epoch schedule.
_base_ = ['./deformable_detr_r18w32_synth.py', './dino_synth_model.py']
task = 'detection'
model = _base_.dino_model

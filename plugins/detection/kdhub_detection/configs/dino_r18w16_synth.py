# Student (and baseline) for DETRDistill on DINO: the Deformable DETR student as mmdet's DINO.
# Quarter-width ResNet-18, 2 encoder layers, 8-epoch schedule, with the teacher's transformer width, decoder depth,
# queries and CDN.
_base_ = ['./deformable_detr_r18w16_synth.py', './dino_synth_model.py']
task = 'detection'
model = _base_.dino_model

# TransKD from MiT-B2 to MiT-B0 on Cityscapes with mmseg's own recipe (not the authors' training).
# TransKD from SegFormer MiT-B2 to MiT-B0 on Cityscapes with mmseg's own Cityscapes recipe (512 x 1024 random crops
# of rescaled images, unweighted cross-entropy, sliding-window test, 160k iterations). This is an mmseg-native
# setting, not the one the TransKD authors trained with, so its numbers are not comparable with the published ones
# (val mIoU B0 55.86, TransKD-Base 68.58, -GL 68.87, -EA 68.98; B2 76.49). The authors' training is
# transkd_mit-b2_to_mit-b0_cityscapes-512x1024_authors.py. Data, schedule and seed are the student's config. With model.teacher.checkpoint=None the teacher is first trained here from its config; give a
# trained one to skip that:
#   torchrun --nproc_per_node 4 -m kdhub train segmentation::transkd_mit-b2_to_mit-b0_cityscapes-512x1024.py \
#       --launcher pytorch --cfg-options model.teacher.checkpoint=work_dirs/b2/model_mmseg.pth
task = 'segmentation'
_base_ = ['./segformer_mit-b0_cityscapes-512x1024.py']
model = dict(
    _delete_=True,
    type='SegDistiller',
    student=dict(config='segformer_mit-b0_cityscapes-512x1024.py'),
    teacher=dict(config='segformer_mit-b2_cityscapes-512x1024.py', checkpoint=None),
    distiller=dict(type='TransKDDistiller', variant='base', csf_channels=64, hcl_weight=1.0,
                   embed_weights=(0.1, 0.1, 0.5, 1.0)))
baseline = False

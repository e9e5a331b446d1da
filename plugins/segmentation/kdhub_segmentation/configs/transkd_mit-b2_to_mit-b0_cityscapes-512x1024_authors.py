# TransKD from MiT-B2 to MiT-B0 on Cityscapes as the TransKD authors' released code trains it.
# TransKD from SegFormer MiT-B2 to MiT-B0 on Cityscapes as the TransKD authors' released code trains it: data, loss,
# optimiser and schedule of segformer_mit-b0_cityscapes-512x1024_authors.py (whole images at 512 x 1024, labels at
# 128 x 256, flip and a +-2 px shift, no mean/std normalisation, class-weighted NLL, batch 2 on one GPU, AdamW 6e-5,
# weight decay 0.01, poly decay per epoch, 1000 epochs), the teacher of segformer_mit-b2_cityscapes-512x1024_authors.py
# and their distillation settings (CSF width 64, HCL weight 1, patch-embedding weights 0.1, 0.1, 0.5, 1; GL-Mixer with
# 8-head SegFormer attention without qkv bias; EA weights starting at 0.1 x (k + 1): the distiller's defaults).
# Published val mIoU of their runs: B0 55.86, TransKD-Base 68.58, -GL 68.87, -EA 68.98; B2 76.49 (measured at the
# 128 x 256 label resolution; this recipe's evaluation is mmseg's, at full resolution). With
# model.teacher.checkpoint=None the teacher is first trained here from its config; give a trained one to skip that:
#   kdhub train segmentation::transkd_mit-b2_to_mit-b0_cityscapes-512x1024_authors.py \
#       --cfg-options model.teacher.checkpoint=work_dirs/b2/model_mmseg.pth model.distiller.variant=ea
task = 'segmentation'
_base_ = ['./segformer_mit-b0_cityscapes-512x1024_authors.py']
model = dict(
    _delete_=True,
    type='SegDistiller',
    student=dict(config='segformer_mit-b0_cityscapes-512x1024_authors.py'),
    teacher=dict(config='segformer_mit-b2_cityscapes-512x1024_authors.py', checkpoint=None),
    distiller=dict(type='TransKDDistiller', variant='base', csf_channels=64, hcl_weight=1.0,
                   embed_weights=(0.1, 0.1, 0.5, 1.0)))
baseline = False

# TransKD's teacher (SegFormer MiT-B2) on Cityscapes as the TransKD authors' teacher script trains it.
# TransKD's teacher on Cityscapes, SegFormer MiT-B2, trained the way the TransKD authors' teacher script trains it:
# the student's data, loss and optimiser (segformer_mit-b0_cityscapes-512x1024_authors.py), with their teacher's
# decoder width (768) and batch (8 images per step), 1000 epochs. Their teacher starts from ImageNet-pretrained
# MiT-B2 weights; no weights are downloaded here: to start from a local copy, add
#   --cfg-options model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=/path/to/mit_b2.pth
task = 'segmentation'
_base_ = ['./segformer_mit-b0_cityscapes-512x1024_authors.py']
model = dict(
    backbone=dict(embed_dims=64, num_layers=[3, 4, 6, 3]),
    decode_head=dict(in_channels=[64, 128, 320, 512], channels=768))
train_dataloader = dict(batch_size=8)

# TransKD's teacher (SegFormer MiT-B2) on Cityscapes with mmseg's own recipe.
# TransKD's teacher on Cityscapes: SegFormer MiT-B2 with the student's data and schedule (mmseg's own Cityscapes
# recipe, not the TransKD authors'; theirs is segformer_mit-b2_cityscapes-512x1024_authors.py).
# No weights are downloaded: to start from ImageNet-pretrained MiT-B2 weights you have locally, add
#   --cfg-options model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=/path/to/mit_b2.pth
task = 'segmentation'
_base_ = ['./segformer_mit-b0_cityscapes-512x1024.py']
model = dict(
    backbone=dict(embed_dims=64, num_layers=[3, 4, 6, 3]),
    decode_head=dict(in_channels=[64, 128, 320, 512]))

# The DINO part of the embedded-set DINO configs, merged into the Deformable DETR configs' model.
# Used by dino_r18w32_synth.py and dino_r18w16_synth.py: two-stage query selection, box refinement and contrastive
# denoising (CDN) query groups (up to 20 denoising queries per image in training). mmdet 3.3's DINO decoder embeds
# its 4-d reference boxes with 128 sine features per coordinate, so DINO needs 256-d queries and a 256-channel neck.
dino_model = dict(
    type='DINO', with_box_refine=True, as_two_stage=True,
    neck=dict(out_channels=256),
    encoder=dict(layer_cfg=dict(self_attn_cfg=dict(embed_dims=256, num_heads=8),
                                ffn_cfg=dict(embed_dims=256, feedforward_channels=512))),
    decoder=dict(layer_cfg=dict(self_attn_cfg=dict(embed_dims=256, num_heads=8),
                                cross_attn_cfg=dict(embed_dims=256, num_heads=8),
                                ffn_cfg=dict(embed_dims=256, feedforward_channels=512))),
    positional_encoding=dict(num_feats=128, offset=0.0, temperature=20),
    bbox_head=dict(type='DINOHead', embed_dims=256, loss_cls=dict(loss_weight=1.0)),
    dn_cfg=dict(label_noise_scale=0.5, box_noise_scale=1.0, group_cfg=dict(dynamic=True, num_dn_queries=20)))

# Channel-wise distillation (CWD) on the demo's pipeline, a baseline method: MiT-T -> MiT-N on the embedded data.
# Shu et al., 2021 (the core's ChannelWiseDistillationLoss) on the decode heads' class logits, tau = 4, weight 3 as
# the paper uses for segmentation.
task = 'segmentation'
_base_ = ['./transkd_mit-t_to_mit-n_synth.py']
model = dict(
    distiller=dict(
        _delete_=True,
        type='TermsDistiller',
        terms=[dict(name='cwd', loss=dict(type='cwd', tau=4.0), student='decode_head.conv_seg',
                    teacher='decode_head.conv_seg', weight=3.0)]))

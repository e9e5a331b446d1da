# Logit KD on the demo's pipeline, a baseline method: MiT-T -> MiT-N on the embedded data.
# Pixel-wise KD (Hinton et al.; the core's KDLoss) between the decode heads' class logits,
# KL(softmax(t/T) || softmax(s/T)) * T^2 averaged over pixels.
task = 'segmentation'
_base_ = ['./transkd_mit-t_to_mit-n_synth.py']
model = dict(
    distiller=dict(
        _delete_=True,
        type='TermsDistiller',
        terms=[dict(name='kd', loss=dict(type='kd', temperature=1.0), student='decode_head.conv_seg',
                    teacher='decode_head.conv_seg', weight=1.0)]))

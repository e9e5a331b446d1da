# The demo (`kdhub demo segmentation`): TransKD from MiT-T to MiT-N on the embedded data.
# The data, schedule and seed are the student's (this file inherits its config); the teacher is trained first from
# its own config (model.teacher.checkpoint=None) and the student is also trained alone (baseline=True) for
# comparison.
#   kdhub train segmentation::transkd_mit-t_to_mit-n_synth.py --work-dir work_dirs/transkd
# Variants: --cfg-options model.distiller.variant=gl (GL-Mixer) or ea (Embedding Assistant).
task = 'segmentation'
_base_ = ['./segformer_mit-n_synth.py']
model = dict(
    _delete_=True,
    type='SegDistiller',
    student=dict(config='segformer_mit-n_synth.py'),
    teacher=dict(config='segformer_mit-t_synth.py', checkpoint=None),
    distiller=dict(
        type='TransKDDistiller',
        variant='base',
        csf_channels=64,
        hcl_weight=1.0,
        embed_weights=(0.1, 0.1, 0.5, 1.0)))
baseline = True

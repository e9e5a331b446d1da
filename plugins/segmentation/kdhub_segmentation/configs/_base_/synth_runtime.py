# Runtime shared by the embedded-data configs: mmseg's defaults, CPU-friendly, kdhub's modules imported.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['kdhub_segmentation.mm'], allow_failed_imports=False)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=False)
log_processor = dict(by_epoch=False)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.001, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'pos_block': dict(decay_mult=0.), 'norm': dict(decay_mult=0.)}))

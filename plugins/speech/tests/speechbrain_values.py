"""Values written by hand from SpeechBrain's published SepFormer recipe for Libri2Mix,
recipes/LibriMix/separation/hparams/sepformer-libri2mix.yaml (SpeechBrain 1.x), so the tests compare the
shipped LibriMix configs against the recipe and not against themselves."""

SEPFORMER_LIBRI2MIX = {
    "sample_rate": 8000,
    "num_spks": 2,
    "N_epochs": 200,
    "batch_size": 1,
    "lr": 0.00015,
    "clip_grad_norm": 5,
    "limit_training_signal_len": False,
    # optimizer: !name:torch.optim.Adam {lr: !ref <lr>, weight_decay: 0}
    "weight_decay": 0,
    # lr_scheduler: !new:speechbrain.nnet.schedulers.ReduceLROnPlateau
    "factor": 0.5,
    "patience": 2,
    "dont_halve_until_epoch": 5,
    # Encoder / MaskNet
    "kernel_size": 16,
    "N_encoder_out": 256,
    "K": 250,
    "masknet_num_layers": 2,
}

"""Helpers shared by the speech plugin tests: a tiny config over a tiny embedded data set."""
import os
import subprocess
import sys
from pathlib import Path

import yaml

TINY_DATA = "{seconds: 0.5, train: 16, valid: 4, test: 4, utterances_per_voice: 1, seed: 0}"


def separator(family: str, channels: int = 16, big: bool = False) -> str:
    """A hyperpyyaml Separator block (SepFormer or Conv-TasNet), tiny."""
    enc = (f"    encoder: !new:speechbrain.lobes.models.dual_path.Encoder\n"
           f"        kernel_size: 16\n        out_channels: {channels}\n")
    dec = (f"    decoder: !new:speechbrain.lobes.models.dual_path.Decoder\n"
           f"        in_channels: {channels}\n        out_channels: 1\n        kernel_size: 16\n"
           f"        stride: 8\n        bias: false\n")
    if family == "sepformer":
        blk = (f"!new:speechbrain.lobes.models.dual_path.SBTransformerBlock {{num_layers: 1, d_model: {channels}, "
               f"nhead: 2, d_ffn: {64 if big else 32}, dropout: 0.0, use_positional_encoding: true, "
               f"norm_before: true}}")
        mask = (f"    masknet: !new:speechbrain.lobes.models.dual_path.Dual_Path_Model\n"
                f"        in_channels: {channels}\n        out_channels: {channels}\n        num_layers: 2\n"
                f"        K: 50\n        num_spks: 2\n        linear_layer_after_inter_intra: false\n"
                f"        intra_model: {blk}\n        inter_model: {blk}\n")
    else:
        mask = (f"    masknet: !new:speechbrain.lobes.models.conv_tasnet.MaskNet\n"
                f"        {{N: {channels}, B: {16 if big else 8}, H: {32 if big else 16}, P: 3, X: 2, R: 2, C: 2, "
                f"norm_type: gLN}}\n")
    return "!new:kdhub_speech.models.Separator\n" + enc + mask + dec


def tiny_config(tmp_path: Path, teacher: str = "sepformer", student: str = "convtasnet", extra: str = "",
                name: str = "tiny.yaml") -> Path:
    text = f"""task: speech
method: distill
seed: 7
__set_seed: !apply:torch.manual_seed [!ref <seed>]
sample_rate: 8000
device: cpu
teacher_model: {separator(teacher, big=True)}
student_model: {separator(student)}
data:
    source: embedded
    embedded: {TINY_DATA}
teacher_training: {{epochs: 1, batch_size: 4, lr: 0.002}}
training: {{epochs: 2, batch_size: 4, lr: 0.002}}
evaluation: {{sdr: true, examples: 1}}
distill:
    output: 1.0
    features:
        weight: 1.0
        pairs: [[{_block(student, 0)}, {_block(teacher, 0)}], [{_block(student, 1)}, {_block(teacher, 1)}]]
    shifting: {{start: 0.9, end: 0.1}}
{extra}"""
    path = tmp_path / name
    path.write_text(text)
    return path


def _block(family: str, i: int) -> str:
    return f"masknet.dual_mdl.{i}" if family == "sepformer" else f"masknet.temporal_conv_net.temporalblock_{i}_1"


def load(path: Path, overrides=()):
    from kdhub_speech.plugin import kdhub_load_config
    return kdhub_load_config(Path(path), list(overrides))


def run_cli(args, env=None, check=True, prefix=None):
    e = {**os.environ, "KDHUB_PROGRESS": "0", **(env or {})}
    cmd = (prefix or [sys.executable, "-m", "kdhub"]) + [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=e)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_manifest(path: Path, rows, header="ID,duration,mix_wav,s1_wav,s2_wav") -> Path:
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def yaml_dump(obj) -> str:
    return yaml.safe_dump(obj)


def recipe_hparams(channels: int = 16, layers: int = 1, nhead: int = 2, d_ffn: int = 64, K: int = 50) -> str:
    """The model part of a SpeechBrain SepFormer separation recipe / model-hub ``hyperparams.yaml``
    (recipes/LibriMix/separation/hparams/sepformer-libri2mix.yaml's names and layout) at the given sizes, with
    its epoch counter, Checkpointer (``save_folder`` to be overridden) and hub Pretrainer."""
    return f"""num_spks: 2
N_encoder_out: {channels}
out_channels: {channels}
kernel_size: 16
kernel_stride: 8
d_ffn: {d_ffn}
save_folder: save
Encoder: !new:speechbrain.lobes.models.dual_path.Encoder
    kernel_size: !ref <kernel_size>
    out_channels: !ref <N_encoder_out>
SBtfintra: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: {layers}
    d_model: !ref <out_channels>
    nhead: {nhead}
    d_ffn: !ref <d_ffn>
    dropout: 0
    use_positional_encoding: True
    norm_before: True
SBtfinter: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: {layers}
    d_model: !ref <out_channels>
    nhead: {nhead}
    d_ffn: !ref <d_ffn>
    dropout: 0
    use_positional_encoding: True
    norm_before: True
MaskNet: !new:speechbrain.lobes.models.dual_path.Dual_Path_Model
    num_spks: !ref <num_spks>
    in_channels: !ref <N_encoder_out>
    out_channels: !ref <out_channels>
    num_layers: 2
    K: {K}
    intra_model: !ref <SBtfintra>
    inter_model: !ref <SBtfinter>
    norm: ln
    linear_layer_after_inter_intra: False
    skip_around_intra: True
Decoder: !new:speechbrain.lobes.models.dual_path.Decoder
    in_channels: !ref <N_encoder_out>
    out_channels: 1
    kernel_size: !ref <kernel_size>
    stride: !ref <kernel_stride>
    bias: False
epoch_counter: !new:speechbrain.utils.epoch_loop.EpochCounter
    limit: 200
modules:
    encoder: !ref <Encoder>
    decoder: !ref <Decoder>
    masknet: !ref <MaskNet>
checkpointer: !new:speechbrain.utils.checkpoints.Checkpointer
    checkpoints_dir: !ref <save_folder>
    recoverables:
        encoder: !ref <Encoder>
        decoder: !ref <Decoder>
        masknet: !ref <MaskNet>
        counter: !ref <epoch_counter>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        encoder: !ref <Encoder>
        masknet: !ref <MaskNet>
        decoder: !ref <Decoder>
"""


def write_hub_folder(folder: Path, hparams: str, modules) -> Path:
    """A SpeechBrain model-hub folder: ``hyperparams.yaml`` and each module's checkpoint as SpeechBrain's
    default save hook (``speechbrain.utils.checkpoints.torch_save``) writes it."""
    from speechbrain.utils.checkpoints import torch_save
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hyperparams.yaml").write_text(hparams)
    for name, module in modules.items():
        torch_save(module, folder / f"{name}.ckpt")
    return folder

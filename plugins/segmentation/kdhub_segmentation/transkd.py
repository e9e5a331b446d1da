"""The TransKD distiller: taps on both MixVisionTransformers, CSF + HCL on stage outputs, PEA (with the
GL-Mixer or EA variants) + the patch-embedding loss on patch embeddings.

Taps (core :class:`kdhub.FeatureTaps`, no mmseg code is edited): in MixVisionTransformer stage i is
``backbone.layers.i`` = [PatchEmbed, blocks, LayerNorm]; ``backbone.layers.i.0`` returns the patch
embedding E_i as (tokens [B, N, C], (H, W)) and ``backbone.layers.i.2`` the stage output after its
LayerNorm as tokens, reshaped here to F_i [B, C, H, W]. Variants: ``base`` (CSF + PEA), ``gl``
(GL-Mixer on the deepest embedding before PEA) and ``ea`` (Embedding Assistant).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple, Union

from torch import Tensor, nn

from kdhub.config import ConfigError
from kdhub.taps import FeatureTaps

from .csf import CSF
from .ea import EmbeddingAssistant
from .gl_mixer import ATTENTIONS, GLMixer
from .hcl import HierarchicalContextLoss
from .patch_embed_loss import PatchEmbeddingLoss
from .pea import PatchEmbeddingAlignment

VARIANTS = ("base", "gl", "ea")


@dataclass
class MiTStages:
    """What TransKD needs to know about a MixVisionTransformer: per-stage widths, strides, patch sizes."""

    widths: List[int]
    strides: List[int]
    patch_sizes: List[int]
    in_channels: int

    @classmethod
    def of(cls, segmentor: nn.Module, key: str) -> "MiTStages":
        bb = getattr(segmentor, "backbone", None)
        if not all(hasattr(bb, a) for a in ("layers", "embed_dims", "num_heads", "strides", "patch_sizes")):
            raise ConfigError(f"{key}.backbone: TransKD taps the stages of a MixVisionTransformer (SegFormer), "
                              f"got {type(bb).__name__}; use type='MixVisionTransformer' or a generic distiller")
        return cls([bb.embed_dims * h for h in bb.num_heads], list(bb.strides), list(bb.patch_sizes),
                   bb.layers[0][0].projection.in_channels)


def check_pair(student: MiTStages, teacher: MiTStages) -> None:
    """Stage counts and strides must agree: CSF, PEA and EA bridge widths, not numbers of stages or sizes."""
    if len(student.widths) != len(teacher.widths):
        raise ConfigError(f"model.student.backbone.num_stages ({len(student.widths)}) != "
                          f"model.teacher.backbone.num_stages ({len(teacher.widths)}): TransKD pairs stage i of the "
                          f"student with stage i of the teacher, so both need the same number of stages")
    if student.strides != teacher.strides:
        raise ConfigError(f"model.student.backbone.strides {student.strides} != model.teacher.backbone.strides "
                          f"{teacher.strides}: paired stages must have the same resolution for HCL and the "
                          f"patch-embedding loss; use the same strides")


def _tokens_to_map(tokens: Tensor, hw: Tuple[int, int]) -> Tensor:
    b, n, c = tokens.shape
    return tokens.transpose(1, 2).reshape(b, c, hw[0], hw[1])


class StageTaps:
    """Patch embeddings E_i and stage outputs F_i of a MixVisionTransformer segmentor, by taps."""

    def __init__(self, segmentor: nn.Module, num_stages: int, detach: bool = False):
        self.embed_paths = [f"backbone.layers.{i}.0" for i in range(num_stages)]
        self.stage_paths = [f"backbone.layers.{i}.2" for i in range(num_stages)]
        self.taps = FeatureTaps(segmentor, self.embed_paths + self.stage_paths, detach=detach)

    def read(self) -> Tuple[List[Tensor], List[Tensor]]:
        embeds, stages = [], []
        for e_path, s_path in zip(self.embed_paths, self.stage_paths):
            tokens, hw = self.taps[e_path]
            embeds.append(tokens)
            stages.append(_tokens_to_map(self.taps[s_path], hw))
        return embeds, stages

    def clear(self) -> None:
        self.taps.clear()

    def close(self) -> None:
        self.taps.close()


class TransKDDistiller(nn.Module):
    """TransKD (Liu et al., 2023) between two SegFormers; ``loss(inputs)`` after both forwards.

    Losses: ``loss_hcl`` = hcl_weight * HCL(CSF(F_S), F_T) and ``loss_embed`` = sum_i gamma_i *
    MSE(E_hat_i, E_T_i). The modules here (CSF, PEA, GL-Mixer / EA) train with the student and are
    dropped at export.

    Defaults follow the authors' released code: the GL-Mixer's attention is SegFormer's (``gl_attention=
    'segformer'``, ``gl_heads=8``, ``gl_qkv_bias=False``; kdhub's earlier form is ``gl_attention='mha',
    gl_heads=1``) and EA's eight mixing weights start at 0.1 x (k + 1) (``ea_init='ramp'``; kdhub's earlier
    form is ``ea_init=0.5``). ``mix_init`` starts the GL-Mixer's alpha and beta.
    """

    teacher_part = "backbone"  # the losses read backbone taps only: the teacher's head never runs
    min_batch = 2  # CSF's batch norm over pooled [B, C, 1, 1] maps needs two images per process

    def __init__(self, student: nn.Module, teacher: nn.Module, variant: str = "base", csf_channels: int = 64,
                 csf_squeeze_channels: int = 32, hcl_weight: float = 1.0, hcl_levels: Sequence[int] = (4, 2, 1),
                 embed_weights: Sequence[float] = (0.1, 0.1, 0.5, 1.0), gl_heads: int = 8, gl_kernel_size: int = 3,
                 mix_init: float = 0.5, gl_attention: str = "segformer", gl_qkv_bias: bool = False,
                 ea_init: Union[str, float] = "ramp"):
        super().__init__()
        if variant not in VARIANTS:
            raise ConfigError(f"model.distiller.variant: unknown TransKD variant {variant!r}; valid choices: "
                              f"{', '.join(VARIANTS)}")
        s, t = MiTStages.of(student, "model.student"), MiTStages.of(teacher, "model.teacher")
        check_pair(s, t)
        n = len(s.widths)
        if len(embed_weights) != n:
            raise ConfigError(f"model.distiller.embed_weights has {len(embed_weights)} values for {n} stages; give "
                              f"one weight per stage, e.g. (0.1, 0.1, 0.5, 1.0)")
        self.variant, self.hcl_weight = variant, float(hcl_weight)
        self.csf = CSF(s.widths, t.widths, csf_channels, csf_squeeze_channels)
        self.pea = nn.ModuleList(PatchEmbeddingAlignment(cs, ct) for cs, ct in zip(s.widths, t.widths))
        self.gl_mixer = None
        if variant == "gl":
            if s.widths[-1] % gl_heads:
                raise ConfigError(f"model.distiller.gl_heads: {gl_heads} heads do not divide the student's deepest "
                                  f"width {s.widths[-1]}; choose a divisor")
            if gl_attention not in ATTENTIONS:
                raise ConfigError(f"model.distiller.gl_attention: unknown attention {gl_attention!r}; valid choices: "
                                  f"{', '.join(ATTENTIONS)}")
            self.gl_mixer = GLMixer(s.widths[-1], gl_heads, gl_kernel_size, mix_init, gl_attention, gl_qkv_bias)
        self.ea = None
        if variant == "ea":
            if not (ea_init == "ramp" or (isinstance(ea_init, (int, float)) and not isinstance(ea_init, bool))):
                raise ConfigError(f"model.distiller.ea_init: {ea_init!r} is neither 'ramp' (the authors' "
                                  f"0.1 x (k + 1)) nor a number (every weight starts there)")
            self.ea = EmbeddingAssistant([s.in_channels] + s.widths[:-1], t.widths, t.patch_sizes, t.strides, ea_init)
        self.hcl = HierarchicalContextLoss(hcl_levels)
        self.embed_loss = PatchEmbeddingLoss(embed_weights)
        self._student = StageTaps(student, n)
        self._teacher = StageTaps(teacher, n, detach=True)

    def loss(self, inputs: Tensor) -> Dict[str, Tensor]:
        e_s, f_s = self._student.read()
        e_t, f_t = self._teacher.read()
        if self.gl_mixer is not None:
            e_s = e_s[:-1] + [self.gl_mixer(e_s[-1])]
        aligned = [pea(e) for pea, e in zip(self.pea, e_s)]
        if self.ea is not None:
            aligned = self.ea(aligned, [inputs] + f_s[:-1])
        return {"loss_hcl": self.hcl_weight * self.hcl(self.csf(f_s), f_t),
                "loss_embed": self.embed_loss(aligned, e_t)}

    def clear(self) -> None:
        """Drop the taps' captures: before a step's forwards, so only they can be read."""
        self._student.clear()
        self._teacher.clear()

    def close(self) -> None:
        self._student.close()
        self._teacher.close()

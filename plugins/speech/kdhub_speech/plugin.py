"""kdhub hooks of the speech plugin: registration and the hyperpyyaml config loader."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from kdhub import hookimpl
from kdhub.config import LoadedConfig, peek_task


@hookimpl
def kdhub_register(registry) -> None:
    from .brain import SeparationBrain
    from .pit_kd import output_distillation
    from .synth import SynthSpec, ensure_embedded
    from .task import SpeechTask

    registry.add_task("speech", SpeechTask())
    registry.add_distiller("speech_kd", SeparationBrain, "PIT-aligned output + intermediate distillation with "
                           "objective shifting, on a SpeechBrain Brain")
    registry.add_loss("pit_si_snr_kd", output_distillation, "SI-SNR of the PIT-aligned student vs the "
                      "ground-truth-aligned teacher")
    registry.add_dataset("speech_synth", lambda **kw: ensure_embedded(SynthSpec(**kw)),
                         "two-speaker 8 kHz mixtures of espeak-ng / flite voices (generated)")


@hookimpl
def kdhub_load_config(path: Path, overrides: Sequence[str]) -> Optional[LoadedConfig]:
    if Path(path).suffix not in (".yaml", ".yml") or peek_task(path) != "speech":
        return None
    from .config import load

    cfg = load(path, overrides)
    return LoadedConfig(task="speech", cfg=cfg, path=Path(path), method=cfg["method"], overrides=list(overrides))

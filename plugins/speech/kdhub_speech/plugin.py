"""kdhub hooks of the speech plugin: registration and the hyperpyyaml config loader.

Registration imports nothing (SpeechBrain and torchaudio are imported when a speech config is run), so
``kdhub list`` stays fast. The speech task runs one method, selected by the config's ``method: distill``.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import List, Optional, Sequence

from kdhub import hookimpl
from kdhub.config import LoadedConfig, peek_task
from kdhub.stack import Probe

#: the text-to-speech programs the embedded data set's voices come from (debian-packages.txt installs them)
TTS_PROGRAMS = ("espeak-ng", "flite")


@hookimpl
def kdhub_register(registry) -> None:
    registry.add_task("speech", "kdhub_speech.task:SpeechTask", "two-speaker separation on SpeechBrain: a "
                      "SepFormer teacher distilled into a small separator", demo=True)
    registry.add_configs("speech", "kdhub_speech")
    registry.add_distiller("distill", "kdhub_speech.brain:SeparationBrain", "PIT-aligned output + intermediate "
                           "distillation with objective shifting, on a SpeechBrain Brain (method: distill)",
                           domain="speech")
    registry.add_dataset("speech_synth", "kdhub_speech.synth:generate", "two-speaker 8 kHz mixtures of espeak-ng / "
                         "flite voices (generated)", domain="speech")


@hookimpl
def kdhub_load_config(path: Path, overrides: Sequence[str]) -> Optional[LoadedConfig]:
    if Path(path).suffix not in (".yaml", ".yml") or peek_task(path) != "speech":
        return None
    from .config import load

    cfg = load(path, overrides)
    return LoadedConfig(task="speech", cfg=cfg, path=Path(path), method=cfg["method"], overrides=list(overrides))


@hookimpl
def kdhub_doctor() -> List[Probe]:
    """The embedded data set (``kdhub demo speech``, ``data.source: synth``) speaks its sentences with espeak-ng
    and flite; LibriMix-style CSV data needs neither."""
    missing = [p for p in TTS_PROGRAMS if shutil.which(p) is None]
    if missing:
        return [Probe("speech voices", False, f"{', '.join(missing)} not on PATH: the embedded speech data set "
                      f"cannot be generated (CSV manifests still work)", f"sudo apt-get install {' '.join(missing)}")]
    return [Probe("speech voices", True, f"{' and '.join(TTS_PROGRAMS)} found")]

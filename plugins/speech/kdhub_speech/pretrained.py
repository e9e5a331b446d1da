"""A SpeechBrain pretrained separator as the teacher: ``teacher: {source: DIR}``.

``DIR`` is a local folder in one of SpeechBrain's own layouts:

- a model-hub folder (e.g. ``speechbrain/sepformer-libri2mix`` as ``huggingface_hub.snapshot_download`` or
  SpeechBrain's ``from_hparams(savedir=...)`` leaves it): ``hyperparams.yaml`` plus one module checkpoint per
  loadable, ``encoder.ckpt``, ``masknet.ckpt`` and ``decoder.ckpt``;
- a checkpoint folder a separation recipe's ``Checkpointer`` wrote (``save/CKPT+...``, with ``CKPT.yaml``):
  the recoverables ``encoder``, ``masknet`` and ``decoder`` as ``<name>.ckpt``, or a kdhub sub-run's own
  ``save/CKPT+...`` whose ``model.ckpt`` holds the whole separator.

Each module checkpoint is a plain ``state_dict`` (SpeechBrain's ``torch_save`` hook writes
``module.state_dict()``); it is read with ``weights_only=True``, passed through SpeechBrain's own key-renaming
hook for checkpoints of older SpeechBrain versions, and must fit the config's ``teacher_model`` module
strictly. Every file is checked before any is loaded, so a bad folder leaves the model untouched. Nothing is
downloaded: a hub name that is not a local folder is an error that says how to fetch it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict

import torch
from speechbrain.utils.checkpoints import hook_on_loading_state_dict_checkpoint

from kdhub.checkpoint import CheckpointError, load_checkpoint, state_mismatch
from kdhub.config import ConfigError, resolve_path

from .models import Separator

KEY = "teacher.source"
#: the Separator's modules, named as SpeechBrain's separation recipes and hub models name their loadables
MODULES = ("encoder", "masknet", "decoder")
#: what a model-hub name looks like ("owner/name", as SpeechBrain's from_hparams(source=...) takes it)
HUB_NAME = re.compile(r"[\w-][\w.-]*/[\w.-]+")


def download_hint(name: str) -> str:
    """How to fetch a hub model into a folder that ``teacher.source`` can name."""
    local = f"pretrained_models/{name.rstrip('/').split('/')[-1]}"
    return (f"download it first, e.g. python -c \"from huggingface_hub import snapshot_download; "
            f"snapshot_download('{name}', local_dir='{local}')\", then set {KEY}={local}")


def find_folder(value: str, source: str) -> Path:
    """The folder ``teacher.source`` names (as given, or relative to the config file), or a ConfigError."""
    folder = resolve_path(value, source)
    if folder.is_dir():
        return folder
    if folder.exists():
        raise ConfigError(f"{source}: {KEY}: {value} is a file, not a folder; {KEY} names a SpeechBrain model "
                          f"folder (hyperparams.yaml + encoder/masknet/decoder.ckpt) or a save/CKPT+... folder; "
                          f"give a separator state dict as teacher_checkpoint instead")
    if HUB_NAME.fullmatch(value):
        raise ConfigError(f"{source}: {KEY}: {value!r} is not a local folder (neither in the working directory "
                          f"nor beside the config), and kdhub downloads nothing; if it is a model-hub name, "
                          f"{download_hint(value)}")
    raise ConfigError(f"{source}: {KEY}: folder not found: {value}; point it at a SpeechBrain model-hub folder "
                      f"(hyperparams.yaml, encoder/masknet/decoder.ckpt) or a recipe's save/CKPT+... folder")


def layout(folder: Path, source: str) -> str:
    """``'hub'`` (hyperparams.yaml), ``'checkpoint'`` (CKPT.yaml) or a ConfigError saying what is there."""
    if (folder / "CKPT.yaml").is_file():
        return "checkpoint"
    if (folder / "hyperparams.yaml").is_file():
        return "hub"
    saved = sorted(p.name for p in folder.glob("CKPT+*") if p.is_dir())
    if saved:
        raise ConfigError(f"{source}: {KEY}: {folder} is a Checkpointer's save folder holding {len(saved)} "
                          f"checkpoint(s) ({', '.join(saved[:3])}{', ...' if len(saved) > 3 else ''}); point "
                          f"{KEY} at the one to use, e.g. {folder / saved[-1]}")
    raise ConfigError(f"{source}: {KEY}: {folder} holds neither hyperparams.yaml (a SpeechBrain model-hub "
                      f"folder) nor CKPT.yaml (a Checkpointer's CKPT+... folder); point it at one of those")


def _read(file: Path, source: str) -> Dict[str, torch.Tensor]:
    try:
        state = load_checkpoint(file)
    except CheckpointError as exc:
        raise ConfigError(f"{source}: {KEY}: {exc}") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{source}: {KEY}: {file} holds a {type(state).__name__}, not a module's state_dict; "
                          f"write it with SpeechBrain's Checkpointer (or torch.save(module.state_dict()))")
    return hook_on_loading_state_dict_checkpoint(state)


def module_states(model: Separator, folder: Path, source: str) -> Dict[str, Dict[str, torch.Tensor]]:
    """The state dicts ``folder`` holds for each of ``model``'s modules, each checked to fit strictly
    (``{"": state}`` for a kdhub checkpoint of the whole separator)."""
    kind = layout(folder, source)
    whole = folder / "model.ckpt"
    if kind == "checkpoint" and whole.is_file() and not (folder / "masknet.ckpt").is_file():
        plan = {"": whole}
    else:
        plan = {name: folder / f"{name}.ckpt" for name in MODULES}
        missing = [p.name for p in plan.values() if not p.is_file()]
        if missing:
            present = sorted(p.name for p in folder.glob("*.ckpt"))
            raise ConfigError(f"{source}: {KEY}: {folder} has no {', '.join(missing)} (its .ckpt files: "
                              f"{', '.join(present) or 'none'}); a separator folder needs encoder.ckpt, "
                              f"masknet.ckpt and decoder.ckpt, the module checkpoints SpeechBrain's separation "
                              f"recipes and hub models save")
    states = {}
    for name, file in plan.items():
        state = _read(file, source)
        module = getattr(model, name) if name else model
        problem = state_mismatch(module.state_dict(), state)
        if problem:
            part = f"teacher_model.{name}" if name else "teacher_model"
            raise ConfigError(f"{source}: {KEY}: {file} does not fit {part}: {problem}; make the config's "
                              f"teacher_model the architecture the folder was trained with (its "
                              f"{'hyperparams.yaml' if (folder / 'hyperparams.yaml').is_file() else 'recipe hparams'}"
                              f" gives the sizes)")
        states[name] = state
    return states


def load_pretrained(model: Separator, value: str, source: str) -> Path:
    """Load the separator folder ``value`` names into ``model``; returns the folder."""
    folder = find_folder(value, source)
    for name, state in module_states(model, folder, source).items():
        (getattr(model, name) if name else model).load_state_dict(state)
    return folder

"""Teacher checkpoints a user trained outside kdhub: which file layouts ``teacher.checkpoint`` accepts, and
how their keys are read.

The file is loaded with ``weights_only=True`` (tensors and plain containers only). Accepted layouts:

* a graph run's own ``teacher.pth``: ``{'model': state_dict, 'arch': ..., 'in_channels': F, 'num_classes': C}``;
* a bare state dict, ``torch.save(model.state_dict(), path)``;
* a state dict under ``'state_dict'``, ``'model'`` or ``'model_state_dict'`` (the PyTorch tutorial's
  checkpoint ``{'epoch': ..., 'model_state_dict': ..., 'optimizer_state_dict': ...}``); other entries are
  ignored.

Key prefixes that wrappers add are removed when every key carries one: ``module.`` (DistributedDataParallel
and DataParallel) and ``_orig_mod.`` (``torch.compile``). Layer names follow PyG's own ``GCN``,
``GraphSAGE`` and ``GAT`` models (``convs.0``, ``convs.1``, ...); a model written as numbered attributes,
``conv1``, ``conv2``, ... (PyG's example scripts), is read in that order as ``convs.0``, ``convs.1``, ....
Nothing else is renamed: any other difference is reported by :func:`mismatch_hints` and the loader's error.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from kdhub.checkpoint import CheckpointError, load_checkpoint

#: entries a state dict is commonly saved under, in the order they are looked for
WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")
#: key prefixes added by model wrappers (DDP and DataParallel; torch.compile)
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
LAYOUTS = ("a bare state dict (torch.save(model.state_dict(), path)), or one under 'model', 'state_dict' or "
           "'model_state_dict'; a 'module.' (DDP) or '_orig_mod.' (torch.compile) prefix is removed")

_NUMBERED = re.compile(r"conv(\d+)\.(.+)")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def read_teacher_state(path: Path, key: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """The teacher state dict in ``path`` (keys normalised as the module docstring says) and the metadata
    saved beside it (``in_channels``, ``num_classes``, ``arch``: present in a graph run's own teacher file,
    usually absent from a user's). ``key`` names the config key for error messages."""
    obj = load_checkpoint(path, key=key)
    if _is_state_dict(obj):
        state, meta = dict(obj), {}
    else:
        found = next((k for k in WRAPPER_KEYS if isinstance(obj, Mapping) and _is_state_dict(obj.get(k))), None)
        if found is None:
            top = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"{key}: {path} holds no teacher state dict (its top level: {top or 'empty'}); "
                                  f"kdhub reads {LAYOUTS}")
        state = dict(obj[found])
        meta = {k: obj[k] for k in ("in_channels", "num_classes", "arch") if k in obj}
    return normalise_keys(state), meta


def normalise_keys(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``state`` without wrapper prefixes and with numbered ``conv<k>`` layers renamed ``convs.<i>``."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    matches = [_NUMBERED.fullmatch(k) for k in state]
    if matches and all(matches):
        numbers = sorted({int(m.group(1)) for m in matches})
        if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            order = {n: i for i, n in enumerate(numbers)}
            state = {f"convs.{order[int(m.group(1))]}.{m.group(2)}": v for m, v in zip(matches, state.values())}
    return state


def mismatch_hints(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor],
                   arch: Mapping[str, Any], features: int, classes: int) -> List[str]:
    """What would make ``given`` fit, where its keys and shapes tell: a teacher trained on data of another
    feature or class count, a GraphSAGE with a root weight (PyG's default) under ``aggr: gcn``, a GAT
    whose output layer has several heads, another layer count or width, or a prefix every key shares."""
    hints: List[str] = []
    layers = {int(k.split(".")[1]) for k in given if k.startswith("convs.") and k.split(".")[1].isdigit()}
    first = next((given[k] for k in ("convs.0.lin.weight", "convs.0.lin_l.weight", "convs.0.lin_src.weight")
                  if k in given and given[k].dim() == 2), None)
    if first is not None and first.shape[1] != features:
        hints.append(f"the file's first layer takes {first.shape[1]} input features but the data has {features}: "
                     f"use a teacher trained on this data set")
    bias = given.get(f"convs.{max(layers)}.bias", given.get(f"convs.{max(layers)}.lin_l.bias")) if layers else None
    if bias is not None and bias.dim() == 1 and bias.shape[0] != classes:
        hints.append(f"the file's output layer gives {bias.shape[0]} classes but the data has {classes}: use a "
                     f"teacher trained on this data set")
    if layers and max(layers) + 1 != arch.get("layers"):
        hints.append(f"the file has {max(layers) + 1} layers: set teacher.layers={max(layers) + 1}")
    if arch.get("model") == "sage":
        has_root = any(".lin_r." in k for k in given)
        if has_root and arch.get("aggr") == "gcn":
            hints.append("the file's SAGEConv layers have a root weight (lin_r, PyG's default): set teacher.aggr=mean")
        elif not has_root and arch.get("aggr") == "mean" and any(".lin_l." in k for k in given):
            hints.append("the file's SAGEConv layers have no root weight (lin_r): set teacher.aggr=gcn")
    if arch.get("model") == "gat" and layers:
        att = given.get(f"convs.{max(layers)}.att_src")
        if att is not None and att.dim() == 3 and att.shape[1] != arch.get("out_heads", 1):
            hints.append(f"the file's output GAT layer has {att.shape[1]} heads: set teacher.out_heads={att.shape[1]}")
        att0 = given.get("convs.0.att_src")
        if att0 is not None and att0.dim() == 3 and len(layers) > 1 and att0.shape[1] != arch.get("heads"):
            hints.append(f"the file's hidden GAT layers have {att0.shape[1]} heads: set teacher.heads={att0.shape[1]}")
    width = _hidden_width(given, arch)
    if width is not None and width != arch.get("hidden"):
        hints.append(f"the file's hidden layers are {width} wide: set teacher.hidden={width}")
    prefix = _shared_prefix(given)
    if prefix and not any(k.startswith(prefix) for k in expected):
        hints.append(f"every key in the file starts with {prefix!r}: save the teacher's own state_dict() (the "
                     f"module that holds the convs), not the object that wraps it")
    return hints


def _hidden_width(given: Mapping[str, torch.Tensor], arch: Mapping[str, Any]) -> Optional[int]:
    """The total width of the first layer's output in ``given`` (all heads of a GAT), when the layer count
    is above one and the first layer's weight says it."""
    if arch.get("layers", 0) < 2:
        return None
    for name in ("convs.0.lin.weight", "convs.0.lin_l.weight", "convs.0.lin_src.weight"):
        w = given.get(name)
        if w is not None and w.dim() == 2:
            return int(w.shape[0])
    return None


def _shared_prefix(given: Mapping[str, torch.Tensor]) -> str:
    heads = {k.split(".", 1)[0] for k in given}
    return f"{heads.pop()}." if len(heads) == 1 and all("." in k for k in given) else ""

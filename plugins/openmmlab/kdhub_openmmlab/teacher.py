"""The teacher keys every mm distillation config shares::

    model = dict(..., teacher=dict(config='teacher_config.py', checkpoint='work_dirs/teacher/model.pth'))

``config`` names the teacher's own config file: a path (as given if it exists, else relative to the config
that names it), a config shipped with an OpenMMLab library (``mmdet::retinanet/x.py``,
``mmseg::segformer/y.py``) or one a kdhub plugin ships (``detection::x.py``, see
:func:`kdhub.config.resolve_config`); the teacher is that file's ``model``, with any other keys given next to
``config`` merged over it. ``checkpoint`` names the trained teacher's weights: a path (resolved the same way)
or an ``https://`` URL such as a checkpoint OpenMMLab publishes, downloaded once into torch.hub's cache and
verified against the hash its file name carries (:mod:`kdhub.hub`).
Instead of ``config``, the model may be given inline, the same way in every mm domain: ``model=dict(type=...)``
next to ``checkpoint``, or the model's own keys (``teacher=dict(type='EncoderDecoder', ..., checkpoint=...)``).
"""
from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Callable, Optional, Sequence

from kdhub.checkpoint import CheckpointError
from kdhub.config import ConfigError, resolve_config, resolve_path
from kdhub.hub import fetch, is_url

PACKAGE_PREFIXES = ("mmdet", "mmseg")
NOT_MODEL_KEYS = ("config", "checkpoint")


def package_config(name) -> Optional[Path]:
    """``mmdet::a/b.py`` / ``mmseg::a/b.py`` (a config shipped with that library, as ``_base_`` accepts it)
    as a file path; None for any other name. The library is located, not imported."""
    package, sep, rest = str(name).partition("::")
    if not sep or package not in PACKAGE_PREFIXES:
        return None
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        raise ConfigError(f"{name}: {package} is not installed, so its configs cannot be named")
    return Path(spec.origin).parent / ".mim" / "configs" / rest


def config_file(name, source: str, key: str) -> Path:
    """The absolute path of a config file named at ``key`` of the config ``source``."""
    path = package_config(name) or resolve_config(name, source, key)
    if not path.is_file():
        raise ConfigError(f"{source}: key '{key}': config file not found: {name}")
    return path.resolve()


def resolve_specs(model, roles, source: str) -> None:
    """Make ``model.<role>.config`` (for each role) and ``model.teacher.checkpoint`` absolute, in place, so
    the config keeps working from any directory. A checkpoint that does not exist is left as given: the
    domain decides whether it is an error (and names it) or trains the teacher first."""
    for role in roles:
        spec = model.get(role)
        if isinstance(spec, dict) and spec.get("config"):
            spec["config"] = str(config_file(spec["config"], source, f"model.{role}.config"))
    checkpoint = teacher_checkpoint(model)
    if checkpoint and not is_url(checkpoint):
        path = resolve_path(str(checkpoint), source)
        model["teacher"]["checkpoint"] = str(path.resolve()) if path.exists() else str(checkpoint)


def teacher_checkpoint(model) -> Optional[str]:
    """``model.teacher.checkpoint`` as given (None when not given)."""
    teacher = model.get("teacher")
    return teacher.get("checkpoint") if isinstance(teacher, dict) else None


def local_checkpoint(location, key: str = "model.teacher.checkpoint") -> Path:
    """The local file of a teacher checkpoint given as a path or a URL (fetched into the cache once)."""
    try:
        return fetch(location, key)
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None


def model_config(spec, key: str):
    """A model config given as ``dict(config='file.py', **overrides)`` (that file's ``model`` with the overrides
    merged over it) or inline: ``dict(model=dict(type=...))`` or the model's own keys. The keys ``config`` and
    ``checkpoint`` are never part of the model."""
    from mmengine.config import Config, ConfigDict

    spec = ConfigDict(copy.deepcopy(dict(spec)))
    path = spec.pop("config", None)
    spec.pop("checkpoint", None)
    if not path:
        inline = spec.pop("model", None)
        if inline is not None and spec:
            raise ConfigError(f"{key}: next to model=dict(...) only checkpoint is read; got {', '.join(sorted(spec))} "
                              f"(keys of the model go inside model=dict(...))")
        model = ConfigDict(copy.deepcopy(dict(inline))) if inline is not None else spec
        if not isinstance(model.get("type"), str):
            raise ConfigError(f"{key}: give config='<model config .py>' (the model's own config file), or the model "
                              f"inline: model=dict(type=...)")
        return model
    file = package_config(path) or resolve_config(path)
    if not file.is_file():
        raise ConfigError(f"{key}.config: config file not found: {path}")
    cfg = Config.fromfile(str(file))
    if "model" not in cfg:
        raise ConfigError(f"{key}.config: {path} defines no 'model'")
    return with_overrides(cfg.model, spec)


def training_config(cfg, source: str, load: Callable[[Path, Sequence[str]], object]):
    """The config the teacher is trained from when a distillation config gives no checkpoint: the file
    ``model.teacher.config`` names, read by the domain's own ``load``, with the model keys given next to ``config``
    merged over its model, so the teacher trained here is the one the distillation builds and loads strictly."""
    spec = cfg.model.teacher
    path = spec.get("config")
    if not path:
        raise ConfigError(f"{source}: model.teacher.checkpoint is empty, so the teacher is trained here from its "
                          f"own config, but model.teacher has no config; give model.teacher=dict(config='...py') "
                          f"or a trained model.teacher.checkpoint")
    teacher = load(Path(path), [])
    teacher.model = with_overrides(teacher.model, spec)
    from kdhub.logs import get_logger, log_once
    log_once(get_logger(), f"teacher config {path}", f"teacher: trained from {path} with its own schedule and data; "
             f"--cfg-options change the distillation config, and reach the teacher only through model.teacher's "
             f"model keys")
    return teacher


def with_overrides(model, spec):
    """A copy of ``model`` with the keys of a ``dict(config=..., checkpoint=..., **overrides)`` spec other than
    ``config`` and ``checkpoint`` merged over it (for a caller that already loaded the spec's config file)."""
    extra = {k: v for k, v in dict(spec).items() if k not in NOT_MODEL_KEYS}
    return _merged(copy.deepcopy(model), extra)


def _merged(base, extra: dict):
    """``extra`` merged into ``base`` the way mmengine merges a child config (``_delete_`` replaces)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and not value.get("_delete_"):
            _merged(base[key], value)
        else:
            base[key] = {k: v for k, v in value.items() if k != "_delete_"} if isinstance(value, dict) else value
    return base

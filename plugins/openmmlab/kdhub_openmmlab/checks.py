"""Up-front checks of an mm run, made before anything is written (``Stages.check`` of both mm plugins).

mmengine's Runner finds a missing annotation file when it builds the data loaders, an unreadable image
when a worker first loads it, and a teacher checkpoint that does not fit only when the distillation model
is built, each time after the work dir and its timestamped log folder exist, and often after a whole
sub-run has trained. These functions find the same problems first and name the file and key.
"""
from __future__ import annotations

import copy
import importlib
import logging
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import torch

from kdhub.checkpoint import CheckpointError, load_checkpoint, state_mismatch, sub_state_dict
from kdhub.config import ConfigError, require_file
from kdhub.hub import is_url
from kdhub.registry import unknown_name_message

SPLITS = ("train_dataloader", "val_dataloader", "test_dataloader")


def check_datasets(cfg, scope: str, source: str, keys: Sequence[str] = SPLITS,
                   check_dataset: Optional[Callable[[str, Any], None]] = None,
                   check_item: Optional[Callable[[Any, dict, Tuple[int, int]], Optional[str]]] = None) -> None:
    """Build each split's data set as the Runner will (its annotation files parsed and checked by the data set
    class), then read the header of every image it lists. A domain adds its own checks: ``check_dataset(key,
    dataset)`` on each data set (inside wrappers such as Concat and Repeat), raising a :class:`ConfigError`, and
    ``check_item(dataset, info, (width, height))`` on each data info with its data set and its image's size,
    returning what is wrong or None."""
    from mmengine.registry import DefaultScope
    from PIL import Image

    registry = importlib.import_module(f"{scope}.registry").DATASETS
    for key in keys:
        spec = (cfg.get(key) or {}).get("dataset")
        if not spec:
            continue
        try:
            with DefaultScope.overwrite_default_scope(cfg.get("default_scope") or scope):
                dataset = registry.build(copy.deepcopy(spec))
        except ConfigError as exc:
            raise ConfigError(f"{source}: {key}.dataset: {exc}") from None
        except Exception as exc:  # a missing file, a bad JSON, an unknown type: mmengine's own words, one line
            raise ConfigError(f"{source}: {key}.dataset cannot be loaded: {type(exc).__name__}: "
                              f"{_first_line(exc)}") from None
        for leaf in _leaves(dataset):
            if check_dataset is not None:
                try:
                    check_dataset(key, leaf)
                except ConfigError as exc:
                    raise ConfigError(f"{source}: {key}.dataset: {exc}") from None
        for leaf, info in _data_infos(dataset):
            path = info.get("img_path")
            if path is None:
                continue
            try:
                with Image.open(path) as image:
                    size = image.size
            except FileNotFoundError:
                raise ConfigError(f"{source}: {key}.dataset: image not found: {path}; restore it or remove it "
                                  f"from the data set") from None
            except Exception as exc:
                raise ConfigError(f"{source}: {key}.dataset: {path} is not a readable image "
                                  f"({type(exc).__name__}); replace the file or remove it from the data set") from None
            problem = check_item(leaf, info, size) if check_item is not None else None
            if problem:
                raise ConfigError(f"{source}: {key}.dataset: {problem}")


def _names(classes: Sequence[str], limit: int = 6) -> str:
    """Class names for a message: the first ``limit`` and how many there are."""
    shown = ", ".join(map(str, list(classes)[:limit]))
    return f"({shown}{', ...' if len(classes) > limit else ''}; {len(classes)} classes)"


def _first_line(exc: Exception) -> str:
    """The first line of a framework's error message (at most 300 characters)."""
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _leaves(dataset) -> Iterator[Any]:
    """The data sets inside an mmengine data set's wrappers (Concat, Repeat, ClassBalanced ...), initialised."""
    if hasattr(dataset, "datasets"):
        for part in dataset.datasets:
            yield from _leaves(part)
    elif hasattr(dataset, "dataset"):
        yield from _leaves(dataset.dataset)
    else:
        dataset.full_init()
        yield dataset


def _data_infos(dataset) -> Iterator[Tuple[Any, dict]]:
    """The data infos of an mmengine data set, through wrappers, each with the data set holding it."""
    for leaf in _leaves(dataset):
        for i in range(len(leaf)):
            yield leaf, leaf.get_data_info(i)


def dataset_classes(cfg, scope: str) -> List[str]:
    """Class names of the config's training set (its metainfo, or its data set type's METAINFO), through
    wrappers (RepeatDataset ...)."""
    registry = importlib.import_module(f"{scope}.registry").DATASETS
    ds = cfg.train_dataloader.dataset
    while "dataset" in ds and "metainfo" not in ds:
        ds = ds.dataset
    classes = (ds.get("metainfo") or {}).get("classes")
    if classes is None:
        cls = registry.get(ds.get("type"))
        classes = getattr(cls, "METAINFO", {}).get("classes", ())
    return list(classes)


def check_runtime(cfg, scope: str, source: str, model_cfg) -> torch.nn.Module:
    """What the Runner builds by name only once training starts, built or looked up now: ``model_cfg`` (the
    config's model; the student of a distillation config) and the optimizer wrapper on it, the types of
    ``param_scheduler`` and ``custom_hooks``; and the file ``load_from`` names (a URL is mmengine's to fetch).
    Returns the model it built (untrained), for the domain's further checks."""
    load_from = cfg.get("load_from")
    if load_from and not is_url(str(load_from)):
        require_file(str(load_from), "load_from", source, "give an existing checkpoint, or load_from=None to start "
                                                          "from the model's initial weights")
    registries = importlib.import_module(f"{scope}.registry")
    optimizer = (cfg.get("optim_wrapper") or {}).get("optimizer") or {}
    for key, registry, spec in (("optim_wrapper.type", registries.OPTIM_WRAPPERS, cfg.get("optim_wrapper") or {}),
                                ("optim_wrapper.optimizer.type", registries.OPTIMIZERS, optimizer)):
        _known_type(spec, registry, f"{source}: {key}")
    for key, registry in (("param_scheduler", registries.PARAM_SCHEDULERS), ("custom_hooks", registries.HOOKS)):
        specs = cfg.get(key) or []
        for i, spec in enumerate([specs] if isinstance(specs, dict) else specs):
            _known_type(spec, registry, f"{source}: {key}[{i}].type")
    model = _built(lambda: build_model(model_cfg, scope), f"{source}: model")
    if cfg.get("optim_wrapper"):
        from mmengine.optim import build_optim_wrapper
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope(scope):
            _built(lambda: build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper)), f"{source}: optim_wrapper")
    return model


def _known_type(spec, registry, where: str) -> None:
    """A config entry's ``type``, when it is a name, must be registered in ``registry`` (or a parent of it)."""
    name = spec.get("type") if isinstance(spec, dict) else None
    if not isinstance(name, str) or registry.get(name) is not None:
        return
    choices, node = set(), registry
    while node is not None:
        choices.update(node.module_dict)
        node = node.parent
    raise ConfigError(f"{where}: {unknown_name_message(registry.name, name, sorted(choices))}")


def _built(build, where: str):
    """``build()``, or a :class:`ConfigError` at ``where`` with the framework's own words on one line. Its INFO
    logs (mmengine's optimizer constructor logs every parameter's options to the current MMLogger) are left to
    the run's own build."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    previous = logger.level
    logger.setLevel(logging.WARNING)  # MMLogger.setLevel clears the level caches of every MMLogger
    try:
        return build()
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{where} cannot be built: {type(exc).__name__}: {_first_line(exc)}") from None
    finally:
        logger.setLevel(previous)


def build_model(model_cfg, scope: str) -> torch.nn.Module:
    """``model_cfg`` built in ``scope`` without drawing from the global RNG (training's stream stays as it was)."""
    from mmengine.registry import DefaultScope

    models = importlib.import_module(f"{scope}.registry").MODELS
    with torch.random.fork_rng(devices=[]), DefaultScope.overwrite_default_scope(scope):
        return models.build(copy.deepcopy(model_cfg))


def fit_weights(model: torch.nn.Module, checkpoint, key: str, source: str = "", load: bool = False,
                classes: Optional[Sequence[str]] = None) -> None:
    """Read ``checkpoint`` with ``weights_only=True`` (a plain mm checkpoint with ``state_dict``, a bare state
    dict, or a distillation checkpoint whose ``student.`` part is taken) and check that it fits ``model``
    strictly, naming the first missing, unexpected and mis-shaped keys; with ``load``, load it. With ``classes``,
    a checkpoint that records its data set's classes (mmengine's ``meta.dataset_meta``) must have these, in this
    order: a model of other classes fits the same shapes but predicts something else."""
    where = f"{source}: {key}" if source else key
    try:
        ckpt = load_checkpoint(checkpoint, key=where)
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None
    trained_on = (((ckpt.get("meta") or {}).get("dataset_meta") or {}).get("classes")
                  if isinstance(ckpt, dict) and isinstance(ckpt.get("meta"), dict) else None)
    if classes is not None and trained_on is not None and list(trained_on) != list(classes):
        raise ConfigError(f"{where}: {Path(checkpoint)} was trained on the classes {_names(trained_on)}, but this "
                          f"config's data set has {_names(classes)}; give a checkpoint of these classes, in this "
                          f"order")
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"{where}: {checkpoint} holds no state dict; give a checkpoint written by mmengine or kdhub")
    expected = model.state_dict()
    if not any(k in expected for k in state) and any(k.startswith("student.") for k in state):
        state = sub_state_dict(state, "student.")
    problem = state_mismatch(expected, state)
    if problem:
        raise ConfigError(f"{where}: {Path(checkpoint)} does not fit the configured model: {problem}; give the "
                          f"checkpoint of the model the config describes (or fix the model config)")
    if load:
        model.load_state_dict(state, strict=True)

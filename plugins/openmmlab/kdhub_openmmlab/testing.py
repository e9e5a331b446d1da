"""Helpers for tests that run a shipped mm recipe end to end on a tiny data set in the recipe's own format.

A recipe test must shrink only the data, never the code path. :func:`recipe_config` writes a child config of
the recipe (``_base_ = [recipe]``) that changes nothing but data sizes: every resize target, crop and pad
size in the data pipelines and the model's data preprocessor is divided by ``shrink`` (images reach the
recipe's own transforms, model, losses and evaluator ``shrink`` times smaller per side), plus the overrides a
test gives (its schedule, its teacher checkpoint). :func:`pretrained_stand_ins` puts a randomly initialised
file where mmengine looks for each ``init_cfg=dict(type='Pretrained', ...)`` checkpoint a recipe names
(torch.hub's cache under ``$TORCH_HOME``), so ImageNet initialisation runs through mmengine's own loader
without a download. :func:`random_checkpoint` writes a teacher checkpoint of the right architecture.
:func:`tensorboard_matches_mmengine` compares what kdhub's TensorBoard observer wrote for a run with what
mmengine's own visualiser recorded for it. :func:`default_scope_fixture` gives each test module of an mm plugin its
library's default scope.
"""
from __future__ import annotations

import copy
import json
import math
import urllib.parse
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

#: keys of data pipelines holding image sizes (``scale`` of Resize, ``scales`` of RandomChoiceResize, crops)
SIZE_KEYS = ("scale", "scales", "crop_size")


def _divided(value: Any, shrink: int) -> Any:
    """Every positive int of a size (an int, a pair, a list of pairs) divided by ``shrink``, at least 8."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return max(8, value // shrink) if value > 0 else value
    if isinstance(value, (list, tuple)):
        return type(value)(_divided(v, shrink) for v in value)
    return value


def _shrunk_pipeline(value: Any, shrink: int) -> Any:
    """``value`` (a data loader, data set or pipeline) with its transforms' sizes divided."""
    if isinstance(value, dict):
        return {k: _divided(v, shrink) if k in SIZE_KEYS else _shrunk_pipeline(v, shrink) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_shrunk_pipeline(v, shrink) for v in value)
    return value


def _shrunk_model(model: Dict[str, Any], shrink: int) -> Dict[str, Any]:
    """A model config with its data preprocessor's pad ``size`` and a sliding test's window divided (a
    distillation model's student and teacher given inline, likewise)."""
    model = copy.deepcopy(model)
    pre = model.get("data_preprocessor")
    if isinstance(pre, dict) and pre.get("size"):
        pre["size"] = _divided(pre["size"], shrink)
    test = model.get("test_cfg")
    if isinstance(test, dict) and test.get("mode") == "slide":
        for key in ("crop_size", "stride"):
            test[key] = _divided(test[key], shrink)
    for role in ("student", "teacher"):
        if isinstance(model.get(role), dict) and model[role].get("type"):
            model[role] = _shrunk_model(model[role], shrink)
    return model


def _merge(base: Dict[str, Any], extra: Mapping[str, Any]) -> Dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def recipe_config(recipe: Path, out: Path, shrink: int = 8, overrides: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``out``: a child config of ``recipe`` with its data sizes divided by ``shrink`` and ``overrides``
    (a nested dict of top-level keys) merged on top. Returns ``out``."""
    from mmengine.config import Config

    from .metafiles import install
    install()
    cfg = Config.fromfile(str(recipe)).to_dict()
    changed: Dict[str, Any] = {}
    for key, value in cfg.items():
        if key.endswith(("_dataloader", "_pipeline")):
            changed[key] = _shrunk_pipeline(value, shrink)
        elif key == "model" and isinstance(value, dict):
            changed[key] = _shrunk_model(value, shrink)
        elif key == "data_preprocessor" and isinstance(value, dict) and value.get("size"):
            changed[key] = dict(value, size=_divided(value["size"], shrink))
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping):
            changed[key] = _merge(changed.get(key, copy.deepcopy(cfg.get(key))) or {}, value)
        else:
            changed[key] = value
    lines = [f"_base_ = [{str(Path(recipe).resolve())!r}]"]
    lines += [f"{key} = {value!r}" for key, value in changed.items()]
    out.write_text("\n".join(lines) + "\n")
    return out


def _pretrained(value: Any) -> Iterator[Tuple[Dict[str, Any], str]]:
    """(module config, checkpoint) of every ``init_cfg=dict(type='Pretrained', checkpoint=...)`` in a config."""
    if isinstance(value, dict):
        init = value.get("init_cfg")
        if isinstance(init, dict) and init.get("type") == "Pretrained" and isinstance(init.get("checkpoint"), str):
            yield value, init["checkpoint"]
        for v in value.values():
            yield from _pretrained(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _pretrained(v)


def _hub_file_name(checkpoint: str) -> Optional[str]:
    """The file name under torch.hub's cache where mmengine's loader looks for ``checkpoint`` (None: a local
    file, which is not stood in for)."""
    if checkpoint.startswith("torchvision://"):
        from mmengine.runner.checkpoint import get_torchvision_models
        checkpoint = get_torchvision_models()[checkpoint[len("torchvision://"):]]
    if checkpoint.startswith(("http://", "https://")):
        return Path(urllib.parse.urlparse(checkpoint).path).name
    return None


def pretrained_stand_ins(model: Mapping[str, Any], torch_home: Path, scope: str) -> Dict[str, Path]:
    """For each Pretrained ``init_cfg`` in ``model`` (a model config dict), a randomly initialised state dict
    of that module where mmengine's loader finds it (``torch_home/hub/checkpoints/<file>``); returns
    checkpoint name -> file. Files already there are kept."""
    import torch

    from .checks import build_model

    written = {}
    for module, checkpoint in _pretrained(dict(model)):
        name = _hub_file_name(checkpoint)
        if name is None:
            continue
        path = Path(torch_home) / "hub" / "checkpoints" / name
        if not path.is_file():
            cfg = {k: v for k, v in module.items() if k != "init_cfg"}
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(build_model(cfg, scope).state_dict(), path)
        written[checkpoint] = path
    return written


def _without_pretrained(value: Any) -> Any:
    """A config with every ``init_cfg=dict(type='Pretrained', ...)`` dropped (the module's own init instead)."""
    if isinstance(value, dict):
        init = value.get("init_cfg")
        drop = isinstance(init, dict) and init.get("type") == "Pretrained"
        return {k: _without_pretrained(v) for k, v in value.items() if not (drop and k == "init_cfg")}
    if isinstance(value, (list, tuple)):
        return type(value)(_without_pretrained(v) for v in value)
    return value


def random_checkpoint(model: Mapping[str, Any], path: Path, scope: str, meta: Optional[dict] = None) -> Path:
    """A checkpoint (``meta``, ``state_dict``) of the model ``model`` builds to, initialised by its own
    ``init_weights`` (without loading pretrained backbones): a teacher of the right architecture that was never
    trained. (Built alone, some parameters hold uninitialised memory, e.g. DETR's level embeddings.)"""
    import torch
    from mmengine.config import ConfigDict

    from kdhub.checkpoint import atomic_save

    from .checks import build_model
    torch.manual_seed(0)
    net = build_model(ConfigDict(_without_pretrained(dict(model))), scope)
    net.init_weights()
    return atomic_save({"meta": dict(meta or {}), "state_dict": net.state_dict()}, path)


#: what mmengine's visualiser logs besides training losses and evaluation metrics
_TIMING = {"step", "time", "data_time", "eta", "iter", "epoch", "memory", "base_lr", "lr"}


def tensorboard_matches_mmengine(run_dir: Path, role: str) -> Dict[str, int]:
    """Assert that the TensorBoard events of the mm run in ``run_dir`` (``KDHUB_TENSORBOARD=1``) agree with the
    ``vis_data/scalars.json`` mmengine's own visualiser wrote there: each evaluation metric under
    ``eval/<role>/`` at mmengine's step and the learning rate at every logged step. Returns how many values of
    each kind were compared (a test also checks that some were)."""
    from kdhub.testing import read_scalars
    events = read_scalars(Path(run_dir) / "tensorboard")
    own = [json.loads(line) for line in next(Path(run_dir).glob("*/vis_data/scalars.json")).read_text().splitlines()]
    counts = {"eval": 0, "lr": 0}
    for record in own:
        step = record["step"]
        if "lr" in record:
            assert math.isclose(dict(events["train/lr"])[step], record["lr"], rel_tol=1e-6), (step, record)
            counts["lr"] += 1
        elif not any(k.split("/")[0] == "teacher" for k in record):  # evaluations (the teacher's own below)
            for key, value in record.items():
                if key not in _TIMING:
                    assert math.isclose(dict(events[f"eval/{role}/{key}"])[step], value, abs_tol=1e-4), (key, step)
                    counts["eval"] += 1
    return counts


def default_scope_fixture(scope: str):
    """A module-scoped autouse pytest fixture that runs each test module with ``scope`` ("mmdet", "mmseg") as
    mmengine's default scope and restores the previous one after it.

    The default scope is one setting per process, and one test process (a pytest-xdist worker, say) may run the
    other mm plugin's modules first, which leave their own scope set. Module scope, so that the module's and
    session's fixtures building models see it too. A conftest assigns it:
    ``mmdet_scope = default_scope_fixture("mmdet")``."""
    import pytest

    @pytest.fixture(scope="module", autouse=True)
    def default_scope():
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope(scope):
            yield

    return default_scope

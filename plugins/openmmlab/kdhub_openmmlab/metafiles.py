"""OpenMMLab's model-index metafiles, read once per process instead of once per ``mmdet::`` / ``mmseg::`` base.

When a config names a library config (``_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']``), mmengine
0.10 first looks the name up in the library's model index: ``mmengine.config.utils._get_cfg_metainfo`` parses
``.mim/model-index.yml`` and every ``metafile.yml`` it imports (about a hundred YAML files for mmdet) for each
such name, and falls back to the file under ``.mim/configs`` when the name is not a released model. A COCO
recipe names several, and every ``kdhub train`` loads its config, the teacher's and the student's: most of a
short run's time went to parsing the same YAML files again (measured: about half of the segmentation recipe
tests' time).

:func:`install` replaces that function with one that builds each package's index once and answers from it.
The index is built exactly as mmengine builds it (first weights of a config name win, a model without
``Config`` is skipped) and a name that is not in it raises the same ``ValueError``, so lookups and
fall-backs are unchanged; only the repeated parsing is gone.
"""
from __future__ import annotations

import copy
import functools
import os.path as osp
from typing import Any, Dict

_INSTALLED = False


@functools.lru_cache(maxsize=None)
def model_index(package_path: str) -> Dict[str, Dict[str, Any]]:
    """Config name (without ``.py``, relative to ``configs/``) -> its model entry, for one installed package."""
    from mmengine.fileio import load

    index: Dict[str, Dict[str, Any]] = {}
    meta_index = load(osp.join(package_path, ".mim", "model-index.yml"))
    for meta_path in meta_index["Import"]:
        for model in load(osp.join(package_path, ".mim", meta_path))["Models"]:
            if "Config" in model:
                index.setdefault(model["Config"].partition("/")[-1], model)
    return index


def cfg_metainfo(package_path: str, cfg_path: str) -> dict:
    """``mmengine.config.utils._get_cfg_metainfo`` answered from :func:`model_index`."""
    index = model_index(package_path)
    if cfg_path not in index:
        raise ValueError(f"Expected configs: {index.keys()}, but got {cfg_path}")
    return copy.deepcopy(index[cfg_path])


def install() -> None:
    """Route mmengine's metafile lookup through the per-process index (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.config import utils

    utils._get_cfg_metainfo = cfg_metainfo
    _INSTALLED = True

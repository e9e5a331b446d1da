"""The hooks a kdhub plugin may implement.

A plugin is a module (or object) registered under the entry-point group ``kdhub``; it implements any of
these with ``@kdhub.hookimpl``. Four families:

* registration (``kdhub_register``): add tasks, distillers, losses, data sets and config folders to the
  registry;
* configuration (``kdhub_load_config``): the first plugin that recognises a config file loads it, so each
  domain keeps its native format (mmengine ``.py``, hyperpyyaml, YAML, JSON);
* diagnosis (``kdhub_doctor``): what ``kdhub doctor`` cannot tell from versions alone;
* run lifecycle (``kdhub_run_start`` ... ``kdhub_run_end``): every domain engine calls these from its own
  hook system (core Trainer, mmengine Hook, SpeechBrain Brain), so one observer plugin sees runs of any
  domain. They are called on the main process (rank 0) only, each implementation on its own: one that
  raises is reported once and its plugin marked broken, and the run goes on.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence

import pluggy

if TYPE_CHECKING:
    from .config import LoadedConfig
    from .registry import Registry
    from .runs import RunInfo
    from .stack import Probe

PROJECT = "kdhub"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def kdhub_register(registry: "Registry") -> None:
    """Add this plugin's tasks, distillers, losses, data sets and config folders with ``registry.add_*``.

    Give each entry as an import string (``"my_pkg.graph:MyKL"``) with its help text, ``domain=`` (the task a
    method belongs to) and, for tasks, ``demo=``: nothing is imported until the entry is used, so ``kdhub list``
    stays as fast as importing torch. Configs shipped in the plugin's package are declared by package and
    folder, ``registry.add_configs("my_domain", "my_pkg")`` (folder ``configs`` inside ``my_pkg``, listed as
    package data so that wheels carry it): ``kdhub train my_domain::x.yaml`` then finds ``x.yaml`` there
    wherever the package is installed. Called once per plugin when the plugin manager is built. Raising here
    marks the plugin broken (reported by ``kdhub plugins``) without affecting the others.
    """


@hookspec(firstresult=True)
def kdhub_load_config(path: Path, overrides: Sequence[str]) -> Optional["LoadedConfig"]:
    """Load ``path`` if this plugin recognises it, applying ``--cfg-options`` ``overrides`` (``k=v``).

    Return ``None`` for a file that belongs to someone else; the first non-None result wins. A plugin
    that recognises the file but finds it invalid raises :class:`kdhub.config.ConfigError` naming the
    file, the key and the valid choices.
    """


@hookspec
def kdhub_doctor() -> List["Probe"]:
    """What this plugin needs beyond package versions, checked by trying it (``kdhub doctor``): compiled ops
    import, programs exist on ``PATH``. Return :class:`kdhub.stack.Probe` s, each with its fix; only here may a
    plugin import its framework outside a run."""


@hookspec
def kdhub_run_start(run: "RunInfo") -> None:
    """A training run is starting in ``run.work_dir`` (after resume state, if any, is loaded)."""


@hookspec
def kdhub_metrics_logged(run: "RunInfo", step: int, metrics: Mapping[str, float]) -> None:
    """Training metrics (losses, learning rate...) were logged at optimisation step ``step``."""


@hookspec
def kdhub_evaluation_done(run: "RunInfo", role: str, step: int, metrics: Mapping[str, float]) -> None:
    """An evaluation finished; ``role`` is ``teacher``, ``student`` or ``baseline``."""


@hookspec
def kdhub_checkpoint_saved(run: "RunInfo", step: int, path: Path) -> None:
    """A checkpoint was written (atomically, so ``path`` is complete) at step ``step``."""


@hookspec
def kdhub_run_end(run: "RunInfo", summary: Dict[str, Any]) -> None:
    """The run finished and ``summary`` (the content of ``summary.json``) was written."""

"""How the graph task builds its student method: by name, from the kdhub registry.

**Graph methods (distillers).** The graph task builds its student method by name from the registry:
``method: <name>`` in a graph config picks the distiller registered with ``domain="graph"`` under that
name (``none`` trains the baseline only). Any installed plugin can add one::

    @kdhub.hookimpl
    def kdhub_register(registry):
        registry.add_distiller("my_kd", "my_pkg.graph:MyKD", "one-line description", domain="graph")

The registered object is called as ``obj.from_config(student, distill)`` if it has that classmethod,
otherwise as ``obj(student, distill)``:

* ``student`` is the student MLP (``forward(x) -> logits``), whose weights are trained and exported;
* ``distill`` is the config's validated ``distill`` section (``lambda``, ``temperature``, ``tau``,
  ``cache_dir``); a method's own hyper-parameters go in a subsection named after it, ``distill.<name>``
  (a mapping, passed through unvalidated: the method checks it), e.g. ``--cfg-options distill.my_kd.beta=2``.

It returns an ``nn.Module`` whose ``forward(**batch)`` returns a dict of named losses (``loss_*``; the
Trainer sums them and logs each). :class:`kdhub.Algorithm` subclasses implement ``loss(**batch)``. Each
batch holds, for a set of target nodes (every observed node over an epoch; the teacher's soft labels
are computed once from the observed graph):

* ``x`` (features), ``y`` (labels), ``labelled`` (bool mask: a training label may be used),
  ``teacher_logits`` (the teacher's cached logits), one row per target node;
* if the class sets ``needs_graph = True`` (as FF-G2M does): the targets' one-hop neighbourhood instead,
  ``x`` and ``teacher_logits`` with the targets first and then their neighbours, ``y``/``labelled`` for
  the targets only, ``edge_index`` (local ids, neighbour -> target) and ``num_targets``.

A method without ``needs_graph`` may define ``prepare_teacher(teacher_logits) -> {key: [N, ...] tensor}``: it is
called once on the cached logits of every node, and each batch then carries those rows under their keys in
place of ``teacher_logits`` (GLNN turns the logits into probabilities and entropies once, so its per-step KL
costs what a cross entropy does). Accept ``**_`` for keys a method does not use. Loading a config also builds the method once around a
placeholder student (``nn.Identity()``), so that a bad hyper-parameter (raise
:class:`kdhub.config.ConfigError` naming ``distill.<name>.<key>``) is reported before anything trains.
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, Mapping, Sequence

from torch import nn

from kdhub.config import ConfigError

DOMAIN = "graph"


def own_settings(distill: Mapping[str, Any], name: str, keys: Sequence[str]) -> Dict[str, float]:
    """The settings ``keys`` of first-party method ``name``: each the shared ``distill.<key>``, unless the method's
    own subsection ``distill.<name>`` sets it; any other key there, or a value that is not a number, is an error
    naming ``distill.<name>.<key>``. ``lambda`` must lie in [0, 1], ``temperature`` and ``tau`` above 0."""
    own = distill.get(name) or {}
    for key, value in own.items():
        if key not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1)
            hint = f" (did you mean 'distill.{name}.{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown key 'distill.{name}.{key}'{hint}; method {name!r} has the settings "
                              f"{', '.join(keys)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"key 'distill.{name}.{key}' must be a number, got {type(value).__name__} {value!r}")
    out = {key: float(own.get(key, distill[key])) for key in keys}
    for key, value in out.items():
        where = f"distill.{name}.{key}" if key in own else f"distill.{key}"
        if key == "lambda" and not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where} must be in [0, 1], got {value}")
        if key in ("temperature", "tau") and not value > 0.0:
            raise ConfigError(f"{where} must be above 0 (it divides the logits), got {value}")
    return out


def method_names() -> Sequence[str]:
    """The graph methods installed now (every plugin's, from the registry)."""
    from kdhub.plugins import get_registry
    return get_registry().names("distillers", DOMAIN)


def build_method(name: str, student: nn.Module, distill: Mapping[str, Any]) -> nn.Module:
    """The registered graph method ``name`` around ``student`` (the calling convention is above)."""
    from kdhub.plugins import get_registry

    obj = get_registry().get("distillers", name, "graph method", domain=DOMAIN)
    model = getattr(obj, "from_config", obj)(student, dict(distill))
    if not isinstance(model, nn.Module):
        raise ConfigError(f"graph method {name!r} built a {type(model).__name__}, not an nn.Module whose forward "
                          f"returns a dict of losses; see kdhub_graph.methods for the calling convention")
    return model

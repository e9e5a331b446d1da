"""Feature taps: capture the outputs (or inputs) of submodules named by dotted path.

``backbone.layers.2.0`` walks attributes and ModuleList/Sequential indices exactly as
``named_modules()`` names them; ``""`` is the model itself (its output, e.g. logits). Wrappers such as
DistributedDataParallel and DataParallel are looked through. A wrong path fails with the closest valid
names. Hooks are removed by :meth:`FeatureTaps.close` (or leaving the ``with`` block).
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, Iterable, List, Optional

from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """Strip DDP / DataParallel (and similar ``.module`` wrappers) to reach the real model."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) or (
        type(model).__name__ in ("MMDistributedDataParallel", "MMSeparateDistributedDataParallel")
        and hasattr(model, "module")
    ):
        model = model.module
    return model


class TapPathError(LookupError):
    """A dotted module path that does not exist in the model; lists the closest valid paths."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def resolve(model: nn.Module, path: str) -> nn.Module:
    """The submodule at dotted ``path`` of (unwrapped) ``model``."""
    model = unwrap(model)
    if path == "":
        return model
    modules = dict(model.named_modules())
    if path in modules:
        return modules[path]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(path, names, n=5, cutoff=0.4)
    if not close:  # fall back to siblings of the deepest existing prefix
        parts = path.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        prefix = ".".join(parts)
        close = [n for n in names if n.startswith(prefix + ".") and n.count(".") == prefix.count(".") + 1][:8] \
            if prefix else [n for n in names if "." not in n][:8]
    raise TapPathError(
        f"no module at path {path!r} in {type(model).__name__}; closest valid paths: "
        f"{', '.join(close) if close else '(the model has no submodules)'}"
    )


class FeatureTaps:
    """Forward hooks on named submodules that keep their latest output (or input) in ``self.features``.

    ``mode='output'`` stores what the module returned; ``mode='input'`` stores its first positional
    input. With ``detach=True`` (used for teachers) stored tensors carry no graph.
    """

    def __init__(self, model: nn.Module, paths: Iterable[str], mode: str = "output", detach: bool = False):
        if mode not in ("output", "input"):
            raise ValueError(f"tap mode must be 'output' or 'input', got {mode!r}")
        self.model, self.mode, self.detach = model, mode, detach
        self.paths: List[str] = list(dict.fromkeys(paths))
        self.features: Dict[str, Any] = {}
        self._handles = []
        for path in self.paths:
            module = resolve(model, path)
            self._handles.append(module.register_forward_hook(self._make_hook(path)))

    def _make_hook(self, path: str):
        def hook(_module, args, output):
            value = args[0] if self.mode == "input" else output
            if self.detach:
                value = _detach(value)
            self.features[path] = value
        return hook

    def __getitem__(self, path: str) -> Any:
        try:
            return self.features[path]
        except KeyError:
            raise KeyError(f"tap {path!r} captured nothing: the module did not run in the last forward "
                           f"(captured: {', '.join(self.features) or 'nothing'})") from None

    def clear(self) -> None:
        self.features.clear()

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.features.clear()

    def __enter__(self) -> "FeatureTaps":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _detach(value: Any) -> Any:
    if hasattr(value, "detach"):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(_detach(v) for v in value)
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    return value


def select(value: Any, index: Optional[Any]) -> Any:
    """Pick one element of a tuple/list/dict tap output (``index`` None keeps the whole value)."""
    if index is None:
        return value
    return value[index]

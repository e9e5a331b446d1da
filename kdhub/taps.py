"""Feature taps: capture the outputs (or inputs) of submodules named by dotted path.

``backbone.layers.2.0`` walks attributes and ModuleList/Sequential indices exactly as
``named_modules()`` names them; ``""`` is the model itself (its output, e.g. logits). Wrappers such as
DistributedDataParallel and DataParallel are looked through. A wrong path fails with the closest valid
names. Hooks are removed by :meth:`FeatureTaps.close` (or leaving the ``with`` block).

A captured value is consumed by reading it: reading a tap whose module did not run since the last read is
an error naming the path. A value captured but never read (an evaluation forward's) would otherwise wait for the
next read, so whoever runs a step clears the taps first (:meth:`FeatureTaps.clear`): a module skipped in that step
can then never hand on an earlier batch's feature.
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, Iterable, List, Optional

import torch
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


class TapNotFiredError(TapPathError):
    """A tap read with no value captured since its last read: its module did not run in this step."""


class FeatureTaps:
    """Forward hooks on named submodules that hold their latest output (or input) until it is read.

    ``mode='output'`` stores what the module returned; ``mode='input'`` stores its first positional
    input (or its only keyword argument, for a module called with one). With ``detach=True`` (used for
    teachers) stored tensors carry no graph.

    ``self.features`` maps path -> {device: value}: the device is that of the value's first tensor, so
    DataParallel replicas running on different devices do not overwrite each other's capture. Reading
    (``taps[path]`` or :meth:`pop`) removes the value it returns.
    """

    def __init__(self, model: nn.Module, paths: Iterable[str], mode: str = "output", detach: bool = False):
        if mode not in ("output", "input"):
            raise ValueError(f"tap mode must be 'output' or 'input', got {mode!r}")
        self.model, self.mode, self.detach = model, mode, detach
        self.paths: List[str] = list(dict.fromkeys(paths))
        self.features: Dict[str, Dict[Optional[torch.device], Any]] = {}
        self._handles = []
        for path in self.paths:
            module = resolve(model, path)
            self._handles.append(module.register_forward_hook(self._make_hook(path), with_kwargs=True))

    def _make_hook(self, path: str):
        def hook(_module, args, kwargs, output):
            value = output if self.mode == "output" else _first_input(path, args, kwargs)
            if self.detach:
                value = _detach(value)
            self.features.setdefault(path, {})[_device_of(value)] = value
        return hook

    def pop(self, path: str, device: Optional[torch.device] = None) -> Any:
        """The value captured at ``path`` on ``device``, removed so that it cannot be read twice.

        ``device`` None means the only device that captured one or, with several (DataParallel), the
        current CUDA device: the one a replica's forward runs on.
        """
        per_device = self.features.get(path)
        if not per_device:
            if path not in self.paths:
                raise TapPathError(f"no tap at path {path!r}; tapped paths: {', '.join(self.paths)}")
            raise TapNotFiredError(
                f"tap {path!r} holds no value: its module did not run since the tap was last read (a module "
                f"skipped in this step, or a value read twice); still unread: {', '.join(self.features) or 'nothing'}")
        if device is not None:
            device = torch.device(device)
        elif len(per_device) == 1:
            device = next(iter(per_device))
        elif torch.cuda.is_available():
            device = torch.device("cuda", torch.cuda.current_device())
        if device not in per_device:
            raise TapNotFiredError(f"tap {path!r} holds no value for device {device} (captured on: "
                                   f"{', '.join(map(str, per_device))}); pass device= to choose")
        value = per_device.pop(device)
        if not per_device:
            del self.features[path]
        return value

    __getitem__ = pop

    def pop_all(self) -> Dict[str, Any]:
        """Every tapped path's value (each read once): for code that uses one value in several places. When a
        tap holds none, nothing is read and the error names it."""
        for path in self.paths:
            if not self.features.get(path):
                self.pop(path)  # raises, naming the path and what is still unread
        return {path: self.pop(path) for path in self.paths}

    def clear(self) -> None:
        """Drop every captured value: at the start of a step, so that only this step's forwards can be read."""
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


def _device_of(value: Any) -> Optional[torch.device]:
    """The device of the first tensor in ``value`` (None when it holds no tensor)."""
    if isinstance(value, torch.Tensor):
        return value.device
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else ()
    for item in items:
        device = _device_of(item)
        if device is not None:
            return device
    return None


def _first_input(path: str, args: tuple, kwargs: Dict[str, Any]) -> Any:
    """What an input tap stores: the first positional input, else the only keyword argument."""
    if args:
        return args[0]
    if len(kwargs) == 1:
        return next(iter(kwargs.values()))
    raise TapPathError(f"input tap {path!r}: its module was called with no positional input and keyword arguments "
                       f"{', '.join(kwargs) or '(none)'}, so there is no one input to capture; tap the module's "
                       f"output, or a submodule that receives the tensor positionally")


def _detach(value: Any) -> Any:
    if hasattr(value, "detach"):
        return value.detach()
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple takes its fields as arguments
        return type(value)(*(_detach(v) for v in value))
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

"""The Distiller: owns frozen teacher(s) and the student; methods subclass it.

Teachers never train: their parameters do not require grad, they stay in eval mode whatever ``.train()``
is called with, and :meth:`Distiller.teacher_forward` runs them under ``no_grad``. Several teachers
may be given, each with a weight. Only the student (plus method modules such as adapters, kept
separately) is saved; :meth:`Distiller.student_state_dict` is the deployable export.
"""
from __future__ import annotations

import abc
from typing import Any, Dict, Iterator, Mapping, Optional, Union

import torch
from torch import nn

Teachers = Union[nn.Module, Mapping[str, nn.Module], None]


def freeze(module: nn.Module) -> nn.Module:
    """Make ``module`` a frozen teacher: no parameter requires grad, eval mode."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class Distiller(nn.Module, metaclass=abc.ABCMeta):
    """Base of every distillation method.

    Subclasses implement :meth:`loss` (``forward`` calls it, so DDP wraps a Distiller directly) and
    return a dict of named scalar losses whose sum is optimised. ``teacher_weights`` (default 1 each)
    weight the per-teacher terms of methods that support several teachers.
    """

    def __init__(self, student: nn.Module, teachers: Teachers = None,
                 teacher_weights: Optional[Mapping[str, float]] = None):
        super().__init__()
        self.student = student
        if teachers is None:
            teachers = {}
        elif isinstance(teachers, nn.Module) and not isinstance(teachers, nn.ModuleDict):
            teachers = {"teacher": teachers}
        self.teachers = nn.ModuleDict({k: freeze(v) for k, v in dict(teachers).items()})
        weights = dict(teacher_weights or {})
        unknown = set(weights) - set(self.teachers)
        if unknown:
            raise ValueError(f"teacher_weights names unknown teachers {sorted(unknown)}; "
                             f"teachers: {sorted(self.teachers)}")
        self.teacher_weights = {k: float(weights.get(k, 1.0)) for k in self.teachers}

    # teachers ---------------------------------------------------------------------------------
    @property
    def teacher(self) -> nn.Module:
        """The single teacher (error if there are several)."""
        if len(self.teachers) != 1:
            raise AttributeError(f"this distiller has {len(self.teachers)} teachers; use .teachers[name]")
        return next(iter(self.teachers.values()))

    def teacher_items(self) -> Iterator[tuple]:
        """(name, module, weight) for every teacher."""
        for name, module in self.teachers.items():
            yield name, module, self.teacher_weights[name]

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        for t in self.teachers.values():
            t.eval()
        return self

    def teacher_forward(self, *args: Any, name: Optional[str] = None, **kwargs: Any) -> Any:
        """Run one teacher (``name``, or the only one) without building a graph."""
        module = self.teachers[name] if name is not None else self.teacher
        with torch.no_grad():
            return module(*args, **kwargs)

    # what trains ------------------------------------------------------------------------------
    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the optimiser should see: the student's and the method's own (adapters...)."""
        return (p for p in self.parameters() if p.requires_grad)

    def state_dict_without_teachers(self) -> Dict[str, torch.Tensor]:
        """What a training checkpoint stores: everything but the teachers (they load from their own)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("teachers.")}

    def load_state_dict_without_teachers(self, state: Mapping[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("teachers.")]
        if missing or unexpected:
            raise KeyError(f"checkpoint does not match this distiller: missing {missing[:5]}, "
                           f"unexpected {list(unexpected)[:5]}")

    def student_state_dict(self) -> Dict[str, torch.Tensor]:
        """The deployable student alone (no teachers, no adapters)."""
        return {k: v.detach().clone() for k, v in self.student.state_dict().items()}

    @abc.abstractmethod
    def loss(self, *args: Any, **kwargs: Any) -> Dict[str, torch.Tensor]:
        """The method's named scalar losses for one batch; their sum is optimised."""

    def forward(self, *args: Any, **kwargs: Any) -> Dict[str, torch.Tensor]:
        return self.loss(*args, **kwargs)

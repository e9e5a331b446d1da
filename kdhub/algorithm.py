"""The algorithm: owns the student and the frozen teacher(s), in MMRazor's sense of the word.

An *algorithm* holds the models: it freezes the teachers (no parameter requires grad, norms stay in eval
mode whatever ``.train()`` is called with), keeps them out of optimisers, DDP and checkpoints, exports the
student alone and gives the state without teachers. A *distiller* (:class:`kdhub.mapping.DistillTerms`, or a
domain's own: GID, TransKD...) owns the taps, adapters and losses and the mapping between them.

Teachers are held outside the module tree, so ``parameters()``, ``state_dict()``, ``init_weights()`` and
DistributedDataParallel see only the student and the method's own modules (adapters), while device and
dtype moves (``.to``, ``.cuda``, ``.half``) still carry the teachers along. :class:`TeacherOwner` is that
behaviour as a mixin, so framework models (an mmengine ``BaseModel``) build on it too;
:class:`Algorithm` is the plain-PyTorch base of a method.
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


class TeacherOwner:
    """Frozen teachers held beside an ``nn.Module``'s own tree (mix in before the module class).

    Call :meth:`set_teachers` from ``__init__`` after ``nn.Module.__init__``. ``teacher_weights`` (default 1
    each) weight the per-teacher terms of methods that support several teachers.
    """

    def set_teachers(self, teachers: Teachers, teacher_weights: Optional[Mapping[str, float]] = None) -> None:
        if teachers is None:
            teachers = {}
        elif isinstance(teachers, nn.Module) and not isinstance(teachers, nn.ModuleDict):
            teachers = {"teacher": teachers}
        frozen = {str(k): freeze(v) for k, v in dict(teachers).items()}
        weights = dict(teacher_weights or {})
        unknown = set(weights) - set(frozen)
        if unknown:
            raise ValueError(f"teacher_weights names unknown teachers {sorted(unknown)}; teachers: {sorted(frozen)}")
        # plain attributes, not submodules: outside parameters(), state_dict() and DDP
        object.__setattr__(self, "_teachers", frozen)
        object.__setattr__(self, "teacher_weights", {k: float(weights.get(k, 1.0)) for k in frozen})

    @property
    def teachers(self) -> Dict[str, nn.Module]:
        return self.__dict__.get("_teachers", {})

    @property
    def teacher(self) -> nn.Module:
        """The single teacher (error if there are several)."""
        if len(self.teachers) != 1:
            raise AttributeError(f"this algorithm has {len(self.teachers)} teachers; use .teachers[name]")
        return next(iter(self.teachers.values()))

    def teacher_forward(self, *args: Any, name: Optional[str] = None, **kwargs: Any) -> Any:
        """Run one teacher (``name``, or the only one) without building a graph."""
        module = self.teachers[name] if name is not None else self.teacher
        with torch.no_grad():
            return module(*args, **kwargs)

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        for teacher in self.teachers.values():
            teacher._apply(fn, recurse)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        for teacher in self.teachers.values():
            teacher.eval()
        return self

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the optimiser should see: the student's and the method's own (adapters...)."""
        return (p for p in self.parameters() if p.requires_grad)

    def state_dict_without_teachers(self) -> Dict[str, torch.Tensor]:
        """What a training checkpoint stores: the student and the method's own modules (never a teacher)."""
        return self.state_dict()

    def load_state_dict_without_teachers(self, state: Mapping[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise KeyError(f"checkpoint does not match this algorithm: missing {list(missing)[:5]}, "
                           f"unexpected {list(unexpected)[:5]}")

    def student_state_dict(self) -> Dict[str, torch.Tensor]:
        """The deployable student alone (no teachers, no adapters)."""
        return {k: v.detach().clone() for k, v in self.student.state_dict().items()}


class Algorithm(TeacherOwner, nn.Module, metaclass=abc.ABCMeta):
    """Base of a plain-PyTorch distillation method: the student, frozen teachers and :meth:`loss`.

    Subclasses implement :meth:`loss` (``forward`` calls it, so DDP wraps an algorithm directly) and return a
    dict of named scalar losses whose sum is optimised. Methods without a live teacher (GLNN distils cached
    soft labels) pass none.
    """

    def __init__(self, student: nn.Module, teachers: Teachers = None,
                 teacher_weights: Optional[Mapping[str, float]] = None):
        super().__init__()
        self.student = student
        self.set_teachers(teachers, teacher_weights)

    @abc.abstractmethod
    def loss(self, *args: Any, **kwargs: Any) -> Dict[str, torch.Tensor]:
        """The method's named scalar losses for one batch; their sum is optimised."""

    def forward(self, *args: Any, **kwargs: Any) -> Dict[str, torch.Tensor]:
        return self.loss(*args, **kwargs)

"""Distillation terms: which student tap feeds which loss against which teacher tap, through which adapter.

This is the *distiller* of MMRazor's decomposition (taps, adapters, losses and the mapping between them) as
plain PyTorch. :class:`TapAlgorithm` combines it with a ground-truth loss into a complete,
architecture-agnostic method usable from any config.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .adapters import build_adapter
from .algorithm import Algorithm, Teachers
from .registry import Entry, unknown_name_message
from .taps import FeatureTaps, select


@dataclass
class Term:
    """One distillation term: ``weight * loss(adapter(student[tap]), teacher[tap])``.

    ``student``/``teacher`` are dotted module paths ("" = the model output); ``index`` picks an
    element when the tapped module returns a tuple/dict; ``teachers`` restricts the term to some
    teachers (default: every teacher, each scaled by its teacher weight).
    """

    name: str
    loss: nn.Module
    student: str = ""
    teacher: str = ""
    weight: float = 1.0
    adapter: Optional[nn.Module] = None
    index: Any = None
    teachers: Optional[Sequence[str]] = None


def build_loss(spec: Mapping[str, Any], registry_losses: Optional[Mapping[str, Any]] = None) -> nn.Module:
    """Build a loss from ``{"type": name, **kwargs}``: by name among ``registry_losses`` (classes, or registry
    entries) or, by default, among every loss a plugin registered (the core's own included), so a loss that a
    third-party plugin adds is usable in any domain's terms."""
    spec = dict(spec)
    if registry_losses is None:
        from .plugins import get_registry  # here: the plugins' registration imports this module's users
        registry_losses = get_registry().tables["losses"]
    name = spec.pop("type", None)
    if name not in registry_losses:
        raise KeyError(unknown_name_message("loss", name, registry_losses))
    loss = registry_losses[name]
    return (loss.obj if isinstance(loss, Entry) else loss)(**spec)


def build_terms(specs: Sequence[Mapping[str, Any]], registry_losses: Optional[Mapping[str, Any]] = None) -> List[Term]:
    """Terms from config dicts: ``{name, loss: {type, ...}, student, teacher, weight, adapter: {type,
    in_channels, out_channels}, index, teachers}``."""
    terms = []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        adapter = spec.pop("adapter", None)
        if isinstance(adapter, Mapping):
            adapter = dict(adapter)
            adapter = build_adapter(adapter.pop("type", "auto"), adapter["in_channels"], adapter["out_channels"])
        terms.append(Term(name=spec.pop("name", f"term{i}"), loss=build_loss(spec.pop("loss"), registry_losses),
                          adapter=adapter, **spec))
    return terms


class DistillTerms(nn.Module):
    """Holds taps on the student and on each teacher, the adapters and the losses of a list of terms."""

    def __init__(self, student: nn.Module, teachers: Mapping[str, nn.Module], terms: Sequence[Term]):
        super().__init__()
        self.terms = list(terms)
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):
            raise ValueError(f"distillation term names must be unique, got {names}")
        self.losses = nn.ModuleDict({t.name: t.loss for t in self.terms})
        self.adapters = nn.ModuleDict({t.name: t.adapter for t in self.terms if t.adapter is not None})
        for t in self.terms:
            for k in t.teachers or ():
                if k not in teachers:
                    raise KeyError(unknown_name_message(f"teacher in term {t.name!r}", k, teachers))
        self._student_taps = FeatureTaps(student, [t.student for t in self.terms])
        self._teacher_taps = {k: FeatureTaps(m, [t.teacher for t in self.terms if not t.teachers or k in t.teachers],
                                             detach=True)
                              for k, m in teachers.items()}

    def compute(self, teacher_weights: Mapping[str, float]) -> Dict[str, torch.Tensor]:
        """Weighted losses of every term from the features captured by the latest forwards (each tap is
        read once, as reading consumes it: several terms may share a path)."""
        student = self._student_taps.pop_all()
        teachers = {k: taps.pop_all() for k, taps in self._teacher_taps.items()}
        out = {}
        for t in self.terms:
            s = select(student[t.student], t.index)
            if t.name in self.adapters:
                s = self.adapters[t.name](s)
            total = 0.0
            for k, features in teachers.items():
                if t.teachers and k not in t.teachers:
                    continue
                total = total + teacher_weights[k] * t.loss(s, select(features[t.teacher], t.index))
            out[f"loss_{t.name}"] = t.weight * total
        return out

    def clear(self) -> None:
        """Drop every captured value: called before a step's forwards, so only they can be read."""
        self._student_taps.clear()
        for taps in self._teacher_taps.values():
            taps.clear()

    def close(self) -> None:
        self._student_taps.close()
        for taps in self._teacher_taps.values():
            taps.close()


class TapAlgorithm(Algorithm):
    """A generic method: ground-truth loss on the student plus any list of tap-based terms.

    ``loss(inputs, targets)`` runs each teacher (no grad) and the student on ``inputs``; the term
    losses then read the captured features. ``task_loss(student_output, targets)`` defaults to cross
    entropy.
    """

    def __init__(self, student: nn.Module, teachers: Teachers, terms: Sequence[Term],
                 teacher_weights: Optional[Mapping[str, float]] = None, gt_weight: float = 1.0,
                 task_loss: Optional[Callable[[Any, Any], torch.Tensor]] = None):
        super().__init__(student, teachers, teacher_weights)
        self.distill = DistillTerms(self.student, self.teachers, terms)
        self.gt_weight = float(gt_weight)
        self.task_loss = task_loss or F.cross_entropy

    def loss(self, inputs: Any, targets: Any) -> Dict[str, torch.Tensor]:
        self.distill.clear()  # an evaluation forward's unread capture must not stand in for this step's
        for name in self.teachers:
            self.teacher_forward(inputs, name=name)
        out = self.student(inputs)
        losses = {"loss_gt": self.gt_weight * self.task_loss(out, targets)} if self.gt_weight else {}
        losses.update(self.distill.compute(self.teacher_weights))
        return losses

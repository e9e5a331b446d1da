"""Generic distillation terms from the core (logit KD, CWD, feature MSE ...) on the mmseg pipeline.

Each term names a student and a teacher module path, a core loss and a weight, e.g. pixel-wise logit
KD on the decode heads' classifier: ``dict(name='kd', loss=dict(type='kd', temperature=4.0),
student='decode_head.conv_seg', teacher='decode_head.conv_seg', weight=1.0)``.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence

from torch import Tensor, nn

from kdhub.config import ConfigError
from kdhub.mapping import DistillTerms, build_terms
from kdhub.taps import TapPathError


class TermsDistiller(nn.Module):
    """Tap-based terms of the core (:class:`kdhub.DistillTerms`); ``loss(inputs)`` after both forwards."""

    def __init__(self, student: nn.Module, teacher: nn.Module, terms: Sequence[Mapping[str, Any]]):
        super().__init__()
        if not terms:
            raise ConfigError("model.distiller.terms is empty; give at least one term (name, loss, student, teacher)")
        try:
            built = build_terms([dict(t) for t in terms])
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"model.distiller.terms: {exc}") from None
        heads = (student.decode_head.num_classes, teacher.decode_head.num_classes)
        for i, term in enumerate(built):
            if heads[0] != heads[1] and "decode_head" in (term.student.split(".")[0], term.teacher.split(".")[0]):
                raise ConfigError(f"model.distiller.terms[{i}] reads the decode heads, but they disagree on "
                                  f"num_classes (student {heads[0]}, teacher {heads[1]}); distil between heads over "
                                  f"the same classes")
        try:
            self.terms = DistillTerms(student, {"teacher": teacher}, built)
        except TapPathError as exc:
            raise ConfigError(f"model.distiller.terms: {exc}") from None
        # the teacher's decode head only needs to run when a term reads from it
        self.teacher_part = "backbone" if all(t.teacher.startswith("backbone.") for t in built) else "full"

    def loss(self, inputs: Tensor) -> Dict[str, Tensor]:
        return self.terms.compute({"teacher": 1.0})

    def clear(self) -> None:
        """Drop the taps' captures: before a step's forwards, so only they can be read."""
        self.terms.clear()

    def close(self) -> None:
        self.terms.close()

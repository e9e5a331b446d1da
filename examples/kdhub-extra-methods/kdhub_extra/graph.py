"""``plain_kl``: a graph method (GNN -> MLP) that learns from the teacher's soft labels alone.

Config: ``method: plain_kl`` and, optionally, ``distill: {plain_kl: {temperature: 2.0}}``.
"""
from typing import Any, Dict, Mapping

from torch import Tensor, nn

from kdhub import Algorithm, KDLoss
from kdhub.config import ConfigError

DEFAULTS = {"temperature": 1.0}


class PlainKL(Algorithm):
    """KL(softmax(teacher / T) || softmax(student / T)) over every batch node; labels are not used."""

    def __init__(self, student: nn.Module, temperature: float = 1.0):
        super().__init__(student)
        self.kd = KDLoss(temperature)

    @classmethod
    def from_config(cls, student: nn.Module, distill: Mapping[str, Any]) -> "PlainKL":
        """Reads this method's own subsection ``distill.plain_kl``."""
        own = dict(distill.get("plain_kl") or {})
        unknown = sorted(set(own) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"distill.plain_kl: unknown key(s) {', '.join(unknown)}; valid keys: "
                              f"{', '.join(DEFAULTS)}")
        return cls(student, float(own.get("temperature", DEFAULTS["temperature"])))

    def loss(self, x: Tensor, teacher_logits: Tensor, **_: Tensor) -> Dict[str, Tensor]:
        return {"loss_plain_kl": self.kd(self.student(x), teacher_logits)}

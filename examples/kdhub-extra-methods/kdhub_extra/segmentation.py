"""``LogitMSEDistiller``: a segmentation distiller, MSE between the two decode heads' logits.

Config: ``model.distiller = dict(type='LogitMSEDistiller', weight=1.0)`` in a ``SegDistiller`` model; the
student and the teacher must predict the same classes.
"""
from typing import Dict

import torch.nn.functional as F
from torch import Tensor, nn

from kdhub.config import ConfigError
from kdhub.taps import FeatureTaps

LOGITS = "decode_head.conv_seg"


class LogitMSEDistiller(nn.Module):
    """``weight * MSE(student logits, teacher logits)`` per pixel, read by taps on each ``conv_seg``."""

    def __init__(self, student: nn.Module, teacher: nn.Module, weight: float = 1.0):
        super().__init__()
        if student.decode_head.num_classes != teacher.decode_head.num_classes:
            raise ConfigError(f"model.distiller: LogitMSEDistiller needs heads over the same classes (student "
                              f"{student.decode_head.num_classes}, teacher {teacher.decode_head.num_classes})")
        self.weight = float(weight)
        self.student_taps = FeatureTaps(student, [LOGITS])
        self.teacher_taps = FeatureTaps(teacher, [LOGITS], detach=True)

    def loss(self, inputs: Tensor) -> Dict[str, Tensor]:
        """After the teacher's and the student's forwards of this step."""
        return {"loss_logit_mse": self.weight * F.mse_loss(self.student_taps[LOGITS], self.teacher_taps[LOGITS])}

    def close(self) -> None:
        """Remove the forward hooks (the task builds a distiller once to check the pairing, then closes it)."""
        self.student_taps.close()
        self.teacher_taps.close()

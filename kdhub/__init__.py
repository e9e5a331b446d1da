"""kdhub: knowledge distillation from a large teacher to a small student, across domains."""
from .adapters import ConvAdapter, LinearAdapter, build_adapter
from .config import ConfigError, Field, LoadedConfig, validate
from .algorithm import Algorithm, TeacherOwner, count_parameters, freeze
from .hookspecs import hookimpl
from .losses import (ChannelWiseDistillationLoss, CosineLoss, FeatureMSELoss, KDLoss, RKDAngleLoss,
                     RKDDistanceLoss)
from .mapping import DistillTerms, TapAlgorithm, Term, build_terms
from .runs import RunContext, RunInfo
from .taps import FeatureTaps, unwrap
from .task import DemoResult, ModelResult, Task

__version__ = "0.1.0"

__all__ = [
    "Algorithm", "ChannelWiseDistillationLoss", "ConfigError", "ConvAdapter", "CosineLoss", "DemoResult",
    "DistillTerms", "FeatureMSELoss", "FeatureTaps", "Field", "KDLoss", "LinearAdapter", "LoadedConfig",
    "ModelResult", "RKDAngleLoss", "RKDDistanceLoss", "RunContext", "RunInfo", "TapAlgorithm", "Task",
    "TeacherOwner", "Term", "build_adapter", "build_terms", "count_parameters", "freeze", "hookimpl", "unwrap",
    "validate",
]

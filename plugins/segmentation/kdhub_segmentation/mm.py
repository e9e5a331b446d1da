"""Import this module to register kdhub's segmentation pieces in mmseg's registries.

Configs do so with ``custom_imports = dict(imports=['kdhub_segmentation.mm'])``, so they also work with
mmseg's own tools. Registered: the ``SegDistiller`` model with the ``TransKDDistiller`` and
``TermsDistiller`` distillers, the ``CheckedSegDataset`` and ``SynthSegDataset`` data sets, the
``KDHubLifecycleHook`` and ``TeacherEvalHook`` hooks and the ``kdhub_atomic`` checkpoint file backend.
"""
import mmseg.datasets  # noqa: F401  (mmseg's transforms and data sets, needed by every config)
import mmseg.evaluation  # noqa: F401
import mmseg.models  # noqa: F401

from . import datasets, hooks, model, storage  # noqa: F401

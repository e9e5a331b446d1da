"""Import this module to register kdhub's segmentation pieces in mmseg's registries.

Configs do so with ``custom_imports = dict(imports=['kdhub_segmentation.mm'])``, so they also work with
mmseg's own tools. Registered: the ``SegDistiller`` model with the ``TransKDDistiller`` and
``TermsDistiller`` distillers, the ``CheckedSegDataset`` and ``SynthSegDataset`` data sets, the
``RandomShift`` and ``DownsampleSegMap`` transforms, the ``ClassWeightedNLLLoss`` loss and the
``TeacherEvalHook`` hook; kdhub's OpenMMLab layer adds the ``KDHubLifecycleHook`` hook, the ``KDHubDDP``
wrapper and the ``kdhub_atomic`` checkpoint file backend to mmengine's root registries, which mmseg's fall
back to.
"""
import mmseg.datasets  # noqa: F401  (mmseg's transforms and data sets, needed by every config)
import mmseg.evaluation  # noqa: F401
import mmseg.models  # noqa: F401

import kdhub_openmmlab.register  # noqa: F401

from . import datasets, hooks, model, transforms, weighted_nll  # noqa: F401

"""``kdhub doctor``'s check of what both mm plugins need beyond versions: mmcv's compiled ops.

The package index has no binary mmcv wheel for this stack, so mmcv is built from source; a build without
its ops installs and imports fine, and fails only at the first detector or segmentor that needs RoIAlign,
deformable attention or NMS. Both plugins expose :func:`kdhub_doctor` from their plugin module; the doctor
shows a probe of the same name once.
"""
from __future__ import annotations

from typing import List

from kdhub import hookimpl
from kdhub.stack import Probe

BUILD = ("MMCV_WITH_OPS=1 pip install --no-build-isolation 'mmcv>=2.0.0rc4,<2.2.0' (compiles them, about 10 "
         "minutes), or install the wheel `make wheels` kept: pip install --find-links dist/wheelhouse mmcv")


@hookimpl
def kdhub_doctor() -> List[Probe]:
    try:
        import mmcv
        import mmcv.ops  # noqa: F401  (the compiled extension loads on import)
    except Exception as exc:  # ImportError, or an OSError from a library the extension links against
        return [Probe("mmcv ops", False, f"mmcv's compiled ops do not import ({type(exc).__name__}: {exc})", BUILD)]
    return [Probe("mmcv ops", True, f"mmcv {mmcv.__version__}: compiled ops import")]

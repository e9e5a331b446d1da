"""Import this module (configs: ``custom_imports = dict(imports=['kdhub_detection.register'])``) to register
kdhub's detection components in mmdet's registries (the distillation model, GID, DETRDistill, the data sets)
and kdhub's OpenMMLab layer in mmengine's root registries (the lifecycle hook, the atomic checkpoint backend
and the CPU-capable DDP wrapper), which mmdet's registries fall back to."""
from mmdet.utils import register_all_modules

register_all_modules(init_default_scope=False)

import kdhub_openmmlab.register  # noqa: E402,F401

from . import algorithm, datasets, detr_distill, gid  # noqa: E402,F401

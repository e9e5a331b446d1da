"""Import this module (configs: ``custom_imports = dict(imports=['kdhub_detection.register'])``) to register
kdhub's detection components in mmdet's registries: the distillation model, GID, DETRDistill, the data
sets, the lifecycle hook, the atomic checkpoint backend and the CPU-capable DDP wrapper."""
from mmdet.utils import register_all_modules

register_all_modules(init_default_scope=False)

from . import algorithm, datasets, detr_distill, gid, hooks  # noqa: E402,F401

"""mmengine's DDP wrapper made to run on CPU processes (gloo) as well as on GPUs."""
from __future__ import annotations

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class KDHubDDP(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps CPU models: mmengine passes ``device_ids=[LOCAL_RANK]``,
    which ``DistributedDataParallel`` refuses for a module on the CPU, so without CUDA it passes none."""

    def __init__(self, module, device_ids=None, **kwargs):
        if not torch.cuda.is_available():
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)

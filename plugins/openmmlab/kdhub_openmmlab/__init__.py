"""kdhub-openmmlab: the one OpenMMLab layer the mmengine-based plugins (detection, segmentation) share.

It imports mmengine and the kdhub core only, never a domain library (mmdet, mmseg), and holds:

* :mod:`.runner` -- a loaded config completed for mmengine's Runner (work dir, launcher, resume, kdhub's
  hooks, atomic checkpoints, gloo and the DDP wrapper without CUDA) and the config of a test-only run;
* :mod:`.hooks` -- ``KDHubLifecycleHook``: kdhub's lifecycle events and one resume policy;
* :mod:`.fileio` -- the ``kdhub_atomic`` file backend (atomic ``put`` and ``put_text``);
* :mod:`.ddp` -- ``KDHubDDP``, mmengine's DDP wrapper that also runs on CPU processes;
* :mod:`.options` -- ``--cfg-options`` parsed by mmengine's ``DictAction``, every key and the common value types
  checked;
* :mod:`.checks` -- the up-front checks of a run: data sets and images, models built off the global RNG,
  teacher weights fitted strictly;
* :mod:`.teacher` -- the teacher keys ``model.teacher=dict(config=..., checkpoint=...)``, the checkpoint a
  path or a URL;
* :mod:`.names` -- kdhub's config names (``detection::x.py``) in ``_base_``;
* :mod:`.metafiles` -- the libraries' model-index metafiles parsed once per process (mmengine parses them for
  every ``mmdet::`` / ``mmseg::`` name);
* :mod:`.doctor` -- ``kdhub doctor``'s probe of mmcv's compiled ops, a hook of both plugins;
* :mod:`.testing` -- shipped recipes shrunk to tiny data for tests, random teachers and pretrained stand-ins.

Importing :mod:`kdhub_openmmlab.register` registers the hook, the backend and the wrapper in mmengine's
root registries, which every scope's child registry (mmdet, mmseg) falls back to.
"""
__version__ = "0.1.0"

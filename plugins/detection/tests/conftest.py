import pytest
import torch
from kdhub.testing import data_dir_fixtures
from kdhub_openmmlab.testing import default_scope_fixture

from detection_helpers import load, retinanet

#: embedded data sets are generated once per test session into a temporary folder
detection_data_dir, detection_data_env = data_dir_fixtures("detection_data_dir")


mmdet_default_scope = default_scope_fixture("mmdet")


@pytest.fixture(scope="session")
def mm():
    """mmdet's registries with kdhub's components registered (the scope is set per module above)."""
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    import kdhub_detection.register  # noqa: F401
    from mmdet.registry import DATASETS, MODELS
    return MODELS, DATASETS


def save_random_detector(mm, config, path):
    """A teacher checkpoint: the detector of ``config`` with its initial weights (seeded)."""
    from kdhub.checkpoint import atomic_save
    models, _ = mm
    torch.manual_seed(0)
    det = models.build(load(config).cfg.model)
    det.init_weights()
    atomic_save({"meta": {"dataset_meta": {"classes": ["circle", "square", "triangle", "ring", "cross"]}},
                 "state_dict": det.state_dict()}, path)
    return path


def batch_of(mm, cfg, n=2, preprocess=True):
    """A training batch of ``n`` images from the config's training set (preprocessed, or as the data loader
    gives it, for ``train_step``)."""
    from mmengine.dataset import pseudo_collate
    models, datasets = mm
    ds = datasets.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([ds[i] for i in range(n)])
    if not preprocess:
        return batch
    pre = models.build(cfg.model.get("data_preprocessor") or cfg.model.student.data_preprocessor)
    return pre(batch, True)


@pytest.fixture(scope="session")
def tiny_retina(tmp_path_factory, mm):
    """(student config, teacher config, teacher checkpoint) of a tiny RetinaNet pair."""
    tmp = tmp_path_factory.mktemp("retina")
    student = retinanet(tmp, "student.py", base=8, fpn=16)
    teacher = retinanet(tmp, "teacher.py", base=16, fpn=32)
    return student, teacher, save_random_detector(mm, teacher, tmp / "teacher.pth")


def train_steps(mm, cfg, steps=4, lr=1e-3):
    """``steps`` of mmengine's own ``train_step`` (preprocess, loss, backward, AdamW step) on one fixed batch of
    a freshly built distillation model. Returns (model, total losses per step, teacher state before)."""
    from mmengine.optim import OptimWrapper
    models, _ = mm
    torch.manual_seed(1)
    model = models.build(cfg.model)
    model.init_weights()
    model.train()
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    optim = OptimWrapper(torch.optim.AdamW(params, lr=lr))
    data = batch_of(mm, cfg, n=2, preprocess=False)
    totals = [float(model.train_step(data, optim)["loss"]) for _ in range(steps)]
    return model, totals, teacher_before

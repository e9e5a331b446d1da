import pytest
import torch

from detection_helpers import load, retinanet


@pytest.fixture(scope="session", autouse=True)
def detection_data_dir(tmp_path_factory):
    """Embedded data sets are generated once per test session into a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KDHUB_DATA_DIR", str(tmp_path_factory.mktemp("kdhub-data")))
        yield


@pytest.fixture(scope="session")
def mm():
    """mmdet's registries with the default scope set, and kdhub's components registered."""
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
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


def batch_of(mm, cfg, n=2):
    """A preprocessed training batch of ``n`` images from the config's training set."""
    from mmengine.dataset import pseudo_collate
    models, datasets = mm
    ds = datasets.build(cfg.train_dataloader.dataset)
    pre = models.build(cfg.model.get("data_preprocessor") or cfg.model.student.data_preprocessor)
    return pre(pseudo_collate([ds[i] for i in range(n)]), True)


@pytest.fixture(scope="session")
def tiny_retina(tmp_path_factory, mm):
    """(student config, teacher config, teacher checkpoint) of a tiny RetinaNet pair."""
    tmp = tmp_path_factory.mktemp("retina")
    student = retinanet(tmp, "student.py", base=8, fpn=16)
    teacher = retinanet(tmp, "teacher.py", base=16, fpn=32)
    return student, teacher, save_random_detector(mm, teacher, tmp / "teacher.pth")

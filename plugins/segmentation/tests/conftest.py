import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def seg_data_dir(tmp_path_factory):
    """Embedded segmentation data sets are generated once per test session into a temporary folder."""
    path = tmp_path_factory.mktemp("kdhub-data")
    old = os.environ.get("KDHUB_DATA_DIR")
    os.environ["KDHUB_DATA_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("KDHUB_DATA_DIR", None)
    else:
        os.environ["KDHUB_DATA_DIR"] = old


@pytest.fixture(scope="session")
def mmseg_scope():
    import kdhub_segmentation.mm  # noqa: F401
    from mmengine.registry import init_default_scope
    init_default_scope("mmseg")

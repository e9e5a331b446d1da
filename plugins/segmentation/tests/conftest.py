import pytest


@pytest.fixture(scope="session", autouse=True)
def seg_data_dir(tmp_path_factory):
    """Embedded segmentation data sets are generated once per test session into a temporary folder."""
    path = tmp_path_factory.mktemp("kdhub-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KDHUB_DATA_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def mmseg_scope():
    """mmseg's registries as the default scope, with kdhub's segmentation modules registered."""
    import kdhub_segmentation.mm  # noqa: F401
    from mmengine.registry import init_default_scope
    init_default_scope("mmseg")

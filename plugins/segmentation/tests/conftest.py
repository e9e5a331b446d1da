import pytest


@pytest.fixture(scope="session", autouse=True)
def seg_data_dir(tmp_path_factory):
    """Embedded segmentation data sets are generated once per test session into a temporary folder."""
    path = tmp_path_factory.mktemp("kdhub-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KDHUB_DATA_DIR", str(path))
        yield path


@pytest.fixture(scope="module", autouse=True)
def mmseg_default_scope():
    """Each segmentation test module runs with mmseg as mmengine's default scope, restored after it.

    The default scope is one setting per process, and a test process (a pytest-xdist worker, say) may have run
    detection tests, which set it to mmdet, just before this module. Module scope, so that module fixtures
    building mmseg models see it too."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope("mmseg"):
        yield


@pytest.fixture(scope="session")
def mmseg_scope():
    """mmseg's registries with kdhub's segmentation modules registered (the scope is set per module above)."""
    import kdhub_segmentation.mm  # noqa: F401

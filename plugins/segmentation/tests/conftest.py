import pytest
from kdhub_openmmlab.testing import default_scope_fixture


@pytest.fixture(scope="session", autouse=True)
def seg_data_dir(tmp_path_factory):
    """Embedded segmentation data sets are generated once per test session into a temporary folder."""
    path = tmp_path_factory.mktemp("kdhub-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KDHUB_DATA_DIR", str(path))
        yield path


mmseg_default_scope = default_scope_fixture("mmseg")


@pytest.fixture(scope="session")
def mmseg_scope():
    """mmseg's registries with kdhub's segmentation modules registered (the scope is set per module above)."""
    import kdhub_segmentation.mm  # noqa: F401

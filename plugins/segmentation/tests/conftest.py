import pytest
from kdhub.testing import data_dir_fixtures
from kdhub_openmmlab.testing import default_scope_fixture

#: embedded segmentation data sets are generated once per test session into a temporary folder
seg_data_dir, seg_data_env = data_dir_fixtures("seg_data_dir")


mmseg_default_scope = default_scope_fixture("mmseg")


@pytest.fixture(scope="session")
def mmseg_scope():
    """mmseg's registries with kdhub's segmentation modules registered (the scope is set per module above)."""
    import kdhub_segmentation.mm  # noqa: F401

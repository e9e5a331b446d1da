import pytest

from graph_helpers import tiny_config


@pytest.fixture
def tiny(tmp_path):
    return lambda **over: tiny_config(tmp_path, **over)

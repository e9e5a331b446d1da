import pytest

from speech_helpers import TINY_DATA


@pytest.fixture(scope="session", autouse=True)
def speech_data_dir(tmp_path_factory):
    """Embedded speech data sets are generated once per test session into a temporary folder."""
    import os
    path = tmp_path_factory.mktemp("kdhub-data")
    old = os.environ.get("KDHUB_DATA_DIR")
    os.environ["KDHUB_DATA_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("KDHUB_DATA_DIR", None)
    else:
        os.environ["KDHUB_DATA_DIR"] = old


@pytest.fixture(scope="session")
def tiny_data(speech_data_dir):
    """The tiny embedded set's folder (train/valid/test manifests)."""
    import yaml
    from kdhub_speech.synth import SynthSpec, ensure_embedded
    return ensure_embedded(SynthSpec.from_config(**yaml.safe_load(TINY_DATA)))

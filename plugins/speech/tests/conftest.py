import pytest
from kdhub.testing import data_dir_fixtures

from speech_helpers import TINY_DATA

#: embedded speech data sets are generated once per test session into a temporary folder
speech_data_dir, speech_data_env = data_dir_fixtures("speech_data_dir")


@pytest.fixture(scope="session")
def tiny_data(speech_data_dir):
    """The tiny embedded set's folder (train/valid/test manifests)."""
    import yaml
    from kdhub_speech.synth import SynthSpec, ensure_embedded
    return ensure_embedded(SynthSpec.from_config(**yaml.safe_load(TINY_DATA)), speech_data_dir / "speech")

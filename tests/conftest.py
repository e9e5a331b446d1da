import os
import subprocess
import sys

import pytest

from core_helpers import ROOT


@pytest.fixture(scope="session")
def third_party_site(tmp_path_factory):
    """A site dir where the example plugin kdhub-toy and the broken fixture plugin are really installed
    by pip (dist-info with entry points), as a user's third-party plugins would be."""
    target = tmp_path_factory.mktemp("site")
    for src in (ROOT / "examples" / "kdhub-toy", ROOT / "tests" / "fixtures" / "kdhub-broken"):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(target), str(src)], check=True,
                       env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
    return target

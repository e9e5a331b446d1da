"""The tested dependency stack (see STACK.md of the project) and the check behind ``kdhub doctor``."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import List, Optional, Tuple

# package -> (tested version, which kdhub distributions need it)
TESTED = {
    "torch": ("2.11.0", ("kdhub",)),
    "pluggy": ("1.6+", ("kdhub",)),
    "torchvision": ("0.26.0", ("kdhub-detection", "kdhub-segmentation")),
    "torchaudio": ("2.11.0", ("kdhub-speech",)),
    "torch-geometric": ("2.8.1", ("kdhub-graph",)),
    "speechbrain": ("1.1.2", ("kdhub-speech",)),
    "mmcv": ("2.1.0", ("kdhub-detection", "kdhub-segmentation")),
    "mmengine": ("0.10.7", ("kdhub-detection", "kdhub-segmentation")),
    "mmdet": ("3.3.0", ("kdhub-detection",)),
    "mmsegmentation": ("1.2.2", ("kdhub-segmentation",)),
}

FIX = {
    "mmcv": "MMCV_WITH_OPS=1 MAX_JOBS=2 pip install --no-build-isolation 'setuptools>=77,<81' mmcv==2.1.0",
    "torch": "pip install torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0",
    "torchvision": "pip install torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0",
    "torchaudio": "pip install torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0",
}


@dataclass
class Check:
    package: str
    tested: str
    installed: Optional[str]
    needed_by: Tuple[str, ...]
    ok: bool
    fix: str = ""


def _matches(installed: str, tested: str) -> bool:
    if tested.endswith("+"):
        want = tuple(int(x) for x in tested[:-1].split("."))
        have = tuple(int(x) for x in installed.split("+")[0].split(".")[:len(want)] if x.isdigit())
        return have >= want
    return installed.split("+")[0] == tested


def installed_version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_stack() -> List[Check]:
    """Installed versions against the tested ones, for every package an installed kdhub dist needs."""
    present = {d for d in ("kdhub", "kdhub-detection", "kdhub-segmentation", "kdhub-graph", "kdhub-speech")
               if installed_version(d)} | {"kdhub"}
    out = []
    for pkg, (tested, users) in TESTED.items():
        have = installed_version(pkg)
        needed = tuple(u for u in users if u in present)
        ok = (have is not None and _matches(have, tested)) or (have is None and not needed)
        spec = f"{pkg}>={tested[:-1]}" if tested.endswith("+") else f"{pkg}=={tested}"
        fix = "" if ok else FIX.get(pkg, f"pip install '{spec}'")
        out.append(Check(pkg, tested, have, needed, ok, fix))
    return out

"""The checks behind ``kdhub doctor``: the requirements kdhub and its installed plugins declare, against
what is installed, and :class:`Probe` s of what they need beyond versions (the GPU stack here; compiled ops
and system programs from each plugin's ``kdhub_doctor`` hook).

No version is written here: each distribution's own metadata (``Requires-Dist``, read with
``importlib.metadata``) says what it needs, and the requirements of those requirements are followed too,
so a plugin's pin on its framework and that framework's own needs are both checked. Environment markers
are evaluated; a requirement behind an extra counts only when something asked for that extra.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Dict, List, Optional, Set, Tuple

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .plugins import ENTRY_POINT_GROUP


@dataclass
class Check:
    """One required package: the specifiers its dependents ask for and the version installed."""

    package: str
    installed: Optional[str]
    specifier: SpecifierSet = field(default_factory=SpecifierSet)
    extras: Set[str] = field(default_factory=set)
    needed_by: List[str] = field(default_factory=list)
    direct: bool = False  # required by kdhub or a plugin itself, not only by one of their dependencies

    @property
    def state(self) -> str:
        if self.installed is None:
            return "MISSING"
        try:
            return "ok" if self.specifier.contains(Version(self.installed), prereleases=True) else "MISMATCH"
        except InvalidVersion:
            return "MISMATCH"

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    @property
    def fix(self) -> str:
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        return f"pip install '{self.package}{extras}{self.specifier}'"


def installed_version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def kdhub_distributions() -> Dict[str, metadata.Distribution]:
    """kdhub and every installed distribution that provides a ``kdhub`` entry point, by canonical name."""
    found: Dict[str, metadata.Distribution] = {}
    try:
        found["kdhub"] = metadata.distribution("kdhub")
    except metadata.PackageNotFoundError:
        pass  # running from a source tree that is not installed: only the plugins declare anything
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if getattr(ep, "dist", None) is not None:
            found.setdefault(canonicalize_name(ep.dist.name), ep.dist)
    return found


def _active(req: Requirement, extras: Set[str]) -> bool:
    """Whether ``req``'s marker holds here, for a dependent installed with ``extras``."""
    if req.marker is None:
        return True
    try:
        return any(req.marker.evaluate({"extra": extra}) for extra in sorted(extras) or [""])
    except UndefinedEnvironmentName:
        return False


def check_stack() -> List[Check]:
    """Every requirement reachable from kdhub and its plugins, in the order first met."""
    roots = kdhub_distributions()
    checks: Dict[str, Check] = {}
    queue: List[Tuple[str, metadata.Distribution, Set[str]]] = [(n, d, set()) for n, d in roots.items()]
    seen: Set[Tuple[str, frozenset]] = set()
    while queue:
        name, dist, extras = queue.pop(0)
        if (name, frozenset(extras)) in seen:
            continue
        seen.add((name, frozenset(extras)))
        for line in dist.requires or ():
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue  # pip would have refused to install it; nothing kdhub can add
            if not _active(req, extras):
                continue
            pkg = canonicalize_name(req.name)
            check = checks.get(pkg)
            if check is None:
                check = checks[pkg] = Check(pkg, installed_version(pkg))
            check.specifier &= req.specifier
            check.extras |= set(req.extras)
            if name not in check.needed_by:
                check.needed_by.append(name)
            check.direct |= name in roots
            if check.installed is not None:
                queue.append((pkg, metadata.distribution(pkg), set(req.extras)))
    return list(checks.values())


@dataclass
class Probe:
    """Something checked by trying it rather than by version: CUDA and NCCL, mmcv's compiled ops, a program a
    data generator runs. ``fix`` says what to do when it is not ``ok``."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def gpu_probes() -> List[Probe]:
    """CUDA and NCCL as torch sees them, with the versions torch was built with. No GPU is not a fault (every
    domain trains on CPU); a GPU without NCCL is, for multi-GPU training."""
    import torch
    import torch.distributed as tdist
    built = f"torch {torch.__version__} built with CUDA {torch.version.cuda or 'none'}"
    if not torch.cuda.is_available():
        return [Probe("cuda", True, f"{built}; no usable GPU here: training runs on CPU")]
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    probes = [Probe("cuda", True, f"{built}, cuDNN {torch.backends.cudnn.version()}; GPUs: {names}")]
    if tdist.is_available() and tdist.is_nccl_available():
        version = ".".join(map(str, torch.cuda.nccl.version()))
        probes.append(Probe("nccl", True, f"NCCL {version} available (multi-GPU training uses it)"))
    else:
        probes.append(Probe("nccl", False, "this torch build has no NCCL: multi-GPU training (--launcher) fails",
                            "install a CUDA build of torch from https://pytorch.org (they include NCCL)"))
    return probes

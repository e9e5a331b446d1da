"""Real installed distributions made on the fly: a ``.dist-info`` folder (METADATA, entry_points.txt) plus
optional modules in a site folder, found by ``importlib.metadata`` exactly as pip-installed ones are."""
from pathlib import Path
from typing import Mapping, Sequence


def make_distribution(site: Path, name: str, version: str = "0.1.0", requires: Sequence[str] = (),
                      entry_points: Mapping[str, str] = None, modules: Mapping[str, str] = None) -> Path:
    """Write distribution ``name`` into ``site``: ``requires`` as Requires-Dist lines, ``entry_points``
    (name -> module) in group ``kdhub``, ``modules`` (module name -> source) beside it. Returns ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\n"
                                   f"Name: {name}\nVersion: {version}\n"
                                   + "".join(f"Requires-Dist: {r}\n" for r in requires))
    if entry_points:
        (info / "entry_points.txt").write_text(
            "[kdhub]\n" + "".join(f"{ep} = {target}\n" for ep, target in entry_points.items()))
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(source)
    return site

"""kdhub hooks of the graph plugin: registration and the YAML config loader."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from kdhub import hookimpl
from kdhub.config import LoadedConfig, peek_task

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@hookimpl
def kdhub_register(registry) -> None:
    from .csbm import csbm
    from .data import load_npz, load_pyg
    from .ffg2m import FFG2M, high_frequency_loss, low_frequency_loss
    from .glnn import GLNN
    from .task import GraphTask

    registry.add_task("graph", GraphTask())
    registry.add_distiller("glnn", GLNN, "GLNN: GNN soft labels -> MLP (lambda * CE + (1 - lambda) * KL)")
    registry.add_distiller("ffg2m", FFG2M, "FF-G2M: low- and high-frequency GNN -> MLP distillation")
    registry.add_loss("ffg2m_lfd", low_frequency_loss, "FF-G2M low-frequency term over edges with self-loops")
    registry.add_loss("ffg2m_hfd", high_frequency_loss, "FF-G2M high-frequency term over edges")
    registry.add_dataset("csbm", csbm)
    registry.add_dataset("pyg", load_pyg, "PyG data sets by name (Planetoid, Amazon, Coauthor) from a local root")
    registry.add_dataset("npz", load_npz, "graphs in the GLNN/CPF sparse-npz layout")


@hookimpl
def kdhub_load_config(path: Path, overrides: Sequence[str]) -> Optional[LoadedConfig]:
    if Path(path).suffix not in (".yaml", ".yml") or peek_task(path) != "graph":
        return None
    from .config import load

    cfg = load(path, overrides)
    return LoadedConfig(task="graph", cfg=cfg, path=Path(path), method=cfg["method"], overrides=list(overrides))

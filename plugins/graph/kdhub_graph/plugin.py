"""kdhub hooks of the graph plugin: lazy registration and the YAML config loader.

Registration imports nothing (torch-geometric is imported when a graph config is run), so ``kdhub list``
stays fast.

Graph methods are selected by name from the registry; :mod:`kdhub_graph.methods` says how to add one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from kdhub import hookimpl
from kdhub.config import LoadedConfig, peek_task

from .methods import DOMAIN


@hookimpl
def kdhub_register(registry) -> None:
    registry.add_task(DOMAIN, "kdhub_graph.task:GraphTask", "GNN-to-MLP distillation (GLNN, FF-G2M) on "
                      "torch-geometric graphs", demo=True)
    registry.add_configs(DOMAIN, "kdhub_graph")
    registry.add_distiller("glnn", "kdhub_graph.glnn:GLNN", "GLNN: GNN soft labels -> MLP "
                           "(lambda * CE + (1 - lambda) * KL)", domain=DOMAIN)
    registry.add_distiller("ffg2m", "kdhub_graph.ffg2m:FFG2M", "FF-G2M: low- and high-frequency GNN -> MLP "
                           "distillation", domain=DOMAIN)
    registry.add_dataset("csbm", "kdhub_graph.csbm:csbm", "contextual stochastic block model graphs "
                         "(generated; data.source: csbm)", domain=DOMAIN)
    registry.add_dataset("pyg", "kdhub_graph.data:load_pyg", "PyG data sets by name (Planetoid, Amazon, "
                         "Coauthor) from a local root (data.source: pyg)", domain=DOMAIN)
    registry.add_dataset("npz", "kdhub_graph.data:load_npz", "graphs in the GLNN/CPF sparse-npz layout "
                         "(data.source: npz)", domain=DOMAIN)


@hookimpl
def kdhub_load_config(path: Path, overrides: Sequence[str]) -> Optional[LoadedConfig]:
    if Path(path).suffix not in (".yaml", ".yml") or peek_task(path) != DOMAIN:
        return None
    from .config import load

    cfg = load(path, overrides)
    return LoadedConfig(task=DOMAIN, cfg=cfg, path=Path(path), method=cfg["method"], overrides=list(overrides))

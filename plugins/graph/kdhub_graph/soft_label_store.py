"""Per-node teacher rows (GLNN's prepared soft labels, or logits) in a ``.npy`` file on disk, written in batches
and read back in batches through a memory map.

:mod:`kdhub_graph.soft_labels` keeps a whole graph's logits in one torch file, loaded whole; that suits graphs
of thousands of nodes. For millions of nodes the rows are produced batch by batch (by
:func:`~kdhub_graph.layerwise.layerwise_inference`'s ``sink``) and a student step needs only its batch's rows, so
here neither the writer nor the reader holds the whole table in memory: the writer fills a memory-mapped
``.npy`` file, the reader maps it and copies out the rows it is asked for.

Layout: one float32 array of shape (nodes, columns), the named fields side by side in the order given (GLNN:
``teacher_probs``, C columns, then ``teacher_entropy``, 1 column), and a JSON sidecar (``<file>.json``) naming
the fields, their widths, the shape and any metadata the caller adds (the temperature, the teacher). Writing is
atomic: the array is filled under a temporary name in the same folder and moved into place with
``os.replace``, then the sidecar is written the same way, so a reader finds either the previous complete pair
or the new one, never a partly written array; a writer that fails removes its temporary file. A reader checks
that the sidecar describes the array it maps.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from kdhub.checkpoint import atomic_write_text

Fields = Sequence[Tuple[str, int]]


def sidecar(path: Union[str, Path]) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


class SoftLabelWriter:
    """Fills the rows of ``path`` batch by batch; :meth:`commit` publishes the file. As a context manager,
    commits on a normal exit and removes the temporary file on an exception.

    ``fields``: (name, width) pairs, e.g. ``[("teacher_probs", 10), ("teacher_entropy", 1)]``; a field of width 1
    is read back as a 1-d tensor."""

    def __init__(self, path: Union[str, Path], num_nodes: int, fields: Fields,
                 meta: Optional[Mapping[str, Any]] = None):
        self.path = Path(path)
        self.fields = [(str(n), int(w)) for n, w in fields]
        self.num_nodes, self.meta = int(num_nodes), dict(meta or {})
        self.columns = sum(w for _, w in self.fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._array = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=np.float32,
                                                shape=(self.num_nodes, self.columns))
        self._written = 0

    def write(self, start: int, rows: Mapping[str, torch.Tensor]) -> None:
        """The rows of nodes ``start .. start + len - 1``, one tensor per field (width-1 fields may be 1-d)."""
        block = torch.cat([rows[n].detach().reshape(-1, w).float().cpu() for n, w in self.fields], dim=1)
        self._array[start:start + len(block)] = block.numpy()
        self._written += len(block)

    def commit(self) -> Path:
        """Flush, move the array into place, then write the sidecar. Returns the array's path."""
        if self._written != self.num_nodes:
            raise RuntimeError(f"{self.path}: {self._written} rows written for {self.num_nodes} nodes")
        self._array.flush()
        del self._array
        os.replace(self._tmp, self.path)
        info = {"shape": [self.num_nodes, self.columns], "dtype": "float32", "fields": self.fields,
                "meta": self.meta}
        atomic_write_text(sidecar(self.path), json.dumps(info, indent=2) + "\n")
        return self.path

    def abort(self) -> None:
        self.__dict__.pop("_array", None)
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "SoftLabelWriter":
        return self

    def __exit__(self, kind, *_: Any) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


class SoftLabelReader:
    """The rows of a committed file, by node ids, as the dict of tensors that was written (copies, float32)."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        info = json.loads(sidecar(self.path).read_text())
        self.array = np.load(self.path, mmap_mode="r")
        if list(self.array.shape) != info["shape"] or self.array.dtype != np.float32:
            raise ValueError(f"{self.path}: the array ({self.array.shape}, {self.array.dtype}) is not the one its "
                             f"sidecar describes ({info['shape']}, float32); was it written by another run?")
        self.fields = [(n, w) for n, w in info["fields"]]
        self.meta: Dict[str, Any] = info["meta"]

    def __len__(self) -> int:
        return len(self.array)

    def rows(self, nodes: Union[torch.Tensor, slice]) -> Dict[str, torch.Tensor]:
        """The fields of ``nodes`` (ids, ideally sorted for locality on disk, or a slice)."""
        if isinstance(nodes, slice):  # a view of the map: copied, so the tensor owns writable memory
            block = torch.from_numpy(np.array(self.array[nodes]))
        else:  # fancy indexing copies already
            block = torch.from_numpy(np.ascontiguousarray(self.array[nodes.cpu().numpy()]))
        out, at = {}, 0
        for name, width in self.fields:
            part = block[:, at:at + width]
            out[name] = part[:, 0] if width == 1 else part
            at += width
        return out


def glnn_fields(classes: int) -> Fields:
    """The fields of GLNN's prepared teacher rows (:meth:`kdhub_graph.glnn.GLNN.prepare_teacher`)."""
    return [("teacher_probs", classes), ("teacher_entropy", 1)]

"""Teacher outputs cached on disk for fixed (non-augmented) training data.

One pass of the frozen teacher over the training manifest stores its separated sources, already aligned
to the references with PIT (T_sigma: the references are fixed, so is sigma), and the tapped features the
intermediate term needs, as float16, keyed by utterance ID. The file name is a fingerprint
of the teacher weights, the manifest rows with each audio file's size and modification time, the taps and the
crop, so a changed teacher or data set (also audio rewritten under the same paths) never reuses a stale cache. Written atomically; loaded memory-mapped with ``weights_only=True``. The teacher's pass
shows a progress bar on the main process (off with ``KDHUB_PROGRESS=0``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import speechbrain as sb
import torch

from kdhub import dist
from kdhub.checkpoint import atomic_save, tensor_bytes
from kdhub.progress import track
from kdhub.taps import FeatureTaps

from .data import Manifest, labelled, targets
from .intermediate import MASKS, read_frames
from .models import Separator
from .pit_kd import align_teacher


def fingerprint(teacher: Separator, manifest: Manifest, paths: Sequence[str], segment: int) -> str:
    h = hashlib.sha256()
    for k, v in sorted(teacher.state_dict().items()):
        h.update(k.encode())
        h.update(tensor_bytes(v))
    files = sorted({value for row in manifest.rows.values() for value in row.values() if value})
    stamps = [[f, st.st_size, st.st_mtime_ns] for f in files for st in [_stat(f)] if st is not None]
    # mixtures of different lengths are batched by length (no padding), which changes the cached outputs
    unpadded = not manifest.same_length(segment)
    h.update(json.dumps([manifest.rows, stamps, list(paths), segment, "aligned", unpadded], sort_keys=True).encode())
    return h.hexdigest()[:16]


def _stat(path: str):
    """``os.stat`` of a manifest value that names an existing file (None for anything else)."""
    try:
        return Path(path).stat() if Path(path).is_file() else None
    except (OSError, ValueError):
        return None


class TeacherCache:
    """Look up cached teacher outputs [B, T, C] (aligned to the references where the manifest has them)
    and frame features [B, C, L] by utterance IDs."""

    def __init__(self, path: Path):
        data = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        self.path = Path(path)
        self.index: Dict[str, int] = {k: i for i, k in enumerate(data["ids"])}
        self.outputs: torch.Tensor = data["outputs"]
        self.features: List[torch.Tensor] = list(data["features"])

    def lookup(self, ids: Sequence[str], samples: int, device) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        try:
            idx = torch.tensor([self.index[i] for i in ids])
        except KeyError as exc:
            raise KeyError(f"teacher cache {self.path} has no entry for utterance {exc}; delete it to rebuild")
        out = self.outputs[idx, :samples].to(device=device, dtype=torch.float32)
        return out, [f[idx].to(device=device, dtype=torch.float32) for f in self.features]

    @classmethod
    def build(cls, path: Path, teacher: Separator, data, paths: Sequence[str], device,
              batch_size: int = 8, lengths: Optional[Sequence[int]] = None) -> "TeacherCache":
        """Run ``teacher`` over the DynamicItemDataset ``data`` (rank 0 writes, the others wait). With the items'
        ``lengths`` (in samples, as ``data`` yields them), a batch holds items of one length only: padding a shorter
        mixture into a batch would change what the teacher outputs for it."""
        if MASKS in paths:
            raise ValueError("the teacher cache cannot hold masks (their order depends on the references); "
                             "use distill.cache=false with a 'masknet' feature pair")
        path = Path(path)
        if dist.is_main() and not path.is_file():
            ids: List[str] = []
            outs: List[torch.Tensor] = []
            feats: List[List[torch.Tensor]] = [[] for _ in paths]
            if lengths is None:
                loader = sb.dataio.dataloader.make_dataloader(data, batch_size=batch_size, shuffle=False)
            else:
                groups: Dict[int, List[int]] = {}
                for i, n in enumerate(lengths):
                    groups.setdefault(n, []).append(i)
                batches = [idx[j:j + batch_size] for idx in groups.values() for j in range(0, len(idx), batch_size)]
                loader = sb.dataio.dataloader.make_dataloader(data, batch_sampler=batches)
            teacher.eval()
            with FeatureTaps(teacher, paths, detach=True) as taps, torch.no_grad():
                for batch in track(loader, "caching teacher outputs"):
                    mix = batch.mix_sig.data.to(device)
                    refs = targets(batch, teacher.num_spks)
                    est = align_teacher(teacher(mix), None if refs is None else refs.to(device), labelled(batch))[0]
                    ids += list(batch.id)
                    outs += list(est.half().cpu())
                    for i, f in enumerate(read_frames(teacher, taps, paths, teacher.num_frames(mix))):
                        feats[i] += list(f.half().cpu())
            atomic_save({"ids": ids, "outputs": _stack(outs, 0), "features": [_stack(f, 1) for f in feats]}, path)
        dist.barrier()
        return cls(path)


def _stack(items: List[torch.Tensor], time_dim: int) -> torch.Tensor:
    """Stack items along a new first dim, zero-padding their ``time_dim`` axis to the longest."""
    if not items:
        return torch.zeros(0)
    longest = max(x.shape[time_dim] for x in items)
    shape = list(items[0].shape)
    shape[time_dim] = longest
    out = torch.zeros([len(items)] + shape, dtype=items[0].dtype)
    for i, x in enumerate(items):
        out[i].narrow(time_dim, 0, x.shape[time_dim]).copy_(x)
    return out

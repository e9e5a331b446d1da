"""LibriMix / WSJ0-2mix style CSV manifests, checked before anything trains, as SpeechBrain data sets.

A manifest has the columns ``ID, mix_wav, s1_wav .. sN_wav`` (``duration`` and others are kept but not
needed); without source columns it is a mixtures-only set for teacher-only distillation. A training set
can also mix the two (:meth:`Manifest.with_unlabelled`): rows without sources are distilled from the teacher
alone, the semi-supervised use of distillation. ``$data_root``
in a path stands for the manifest's folder; other relative paths are read from the current directory, as
SpeechBrain reads them. A file saved with a byte-order mark and cells written after ``", "`` read as the plain
form. Every row is checked up front (file readable as audio, the configured sample rate, mono, sources as long
as the mixture, no empty cells, finite samples, at least the encoders' kernel long, no more source columns than
``num_spks``); ``on_bad: stop`` raises a :class:`DataError` naming the file and row, ``on_bad: skip`` drops the
row and counts it. The check decodes every wav once, so it shows a progress bar on the main process (off with
``KDHUB_PROGRESS=0``). Each row's length is kept (:attr:`Manifest.frames`): a set whose lengths differ is
validated one at a time and cached in batches of one length, since padding a batch changes what a separator
outputs.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf
import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from kdhub import dist
from kdhub.config import ConfigError
from kdhub.progress import Progress


class DataError(ConfigError):
    """A manifest or audio file that cannot be used; the message names the file, the row and the fix."""


@dataclass
class Manifest:
    """The usable rows of one manifest and what was skipped."""

    path: Path
    rows: Dict[str, Dict[str, str]]
    sources: List[str]
    skipped: List[str] = field(default_factory=list)
    #: samples of each row's mixture (and sources), by ID
    frames: Dict[str, int] = field(default_factory=dict)

    @property
    def unlabelled(self) -> int:
        """How many rows have no references (mixtures for teacher-only distillation)."""
        return sum(1 for r in self.rows.values() if self.sources and self.sources[0] not in r)

    def split(self, n: int) -> Tuple["Manifest", "Manifest"]:
        """The first ``n`` rows and the rest (everything and nothing for ``n <= 0``): a labelled subset for
        the students, and the mixtures left over."""
        items = list(self.rows.items())
        n = len(items) if n <= 0 else min(n, len(items))
        return (Manifest(self.path, dict(items[:n]), self.sources, self.skipped, self.frames),
                Manifest(self.path, dict(items[n:]), self.sources, [], self.frames))

    def with_unlabelled(self, other: "Manifest") -> "Manifest":
        """These rows plus ``other``'s mixtures with their references dropped (IDs must not collide)."""
        clash = sorted(set(self.rows) & set(other.rows))
        if clash:
            raise DataError(f"{other.path}: ID {clash[0]!r} is also in {self.path}; mixtures without references "
                            f"need IDs of their own")
        rows = dict(self.rows)
        rows.update({k: {"ID": r["ID"], "mix_wav": r["mix_wav"]} for k, r in other.rows.items()})
        return Manifest(self.path, rows, self.sources, self.skipped + other.skipped, {**self.frames, **other.frames})

    def lengths(self, segment: int = 0) -> List[Optional[int]]:
        """Each row's length in samples once cropped to ``segment`` (0: not cropped), in row order; None for a row of
        a manifest built without its lengths."""
        return [min(n, segment) if segment and n is not None else n for n in map(self.frames.get, self.rows)]

    def same_length(self, segment: int = 0) -> bool:
        """Whether every row is as long as the others once cropped to ``segment`` samples: then a batch holds no
        padding."""
        return len(set(self.lengths(segment))) <= 1


def _missing(path: str, manifest: Path) -> str:
    """Why ``path`` is not found, and where a relative path was looked for."""
    if Path(path).is_absolute():
        return "file not found"
    beside = manifest.resolve().parent / path
    hint = (f"; it exists beside the manifest: write $data_root/{path}" if beside.exists() else
            "; write it as $data_root/... to read it from the manifest's folder, or give an absolute path")
    return f"file not found (a relative path is read from the current directory, {Path.cwd()}){hint}"


def _row_problem(row: Dict[str, Optional[str]], cols: List[str], sample_rate: int, manifest: Path,
                 min_samples: int = 1) -> Tuple[Optional[str], int]:
    """What is wrong with a manifest row (None: nothing) and its length in samples."""
    for c in cols:
        if not (row.get(c) or "").strip():
            return f"column '{c}' is empty", 0
    lengths = {}
    for c in cols[1:]:
        path = row[c]
        try:
            info = sf.info(path)
        except Exception as exc:  # soundfile raises several types for missing / corrupt files
            detail = _missing(path, manifest) if not Path(path).exists() else f"unreadable or corrupt audio ({exc})"
            return f"{c} {path}: {detail}", 0
        if info.samplerate != sample_rate:
            return (f"{c} {path}: sample rate {info.samplerate} Hz, but sample_rate is {sample_rate}; "
                    f"resample the data or set sample_rate"), 0
        if info.channels != 1:
            return f"{c} {path}: {info.channels} channels; the separator expects mono files", 0
        try:  # the header can be intact while the samples are not: decode the whole file once
            samples = sf.read(path, dtype="float32", always_2d=True)[0]
        except Exception as exc:
            return f"{c} {path}: unreadable or corrupt audio ({exc})", 0
        if samples.shape[0] != info.frames:
            return (f"{c} {path}: corrupt audio (the header gives {info.frames} samples, {samples.shape[0]} could "
                    f"be read)"), 0
        if samples.shape[0] < min_samples:
            return (f"{c} {path}: {samples.shape[0]} samples, shorter than the models' encoder kernel "
                    f"({min_samples} samples)"), 0
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        if bad:
            return f"{c} {path}: {bad} sample(s) are NaN or infinite", 0
        lengths[c] = info.frames
    if len(set(lengths.values())) > 1:
        parts = ", ".join(f"{c} {n}" for c, n in lengths.items())
        return f"sources and mixture differ in length (samples: {parts})", 0
    return None, lengths.get("mix_wav", 0)


def read_manifest(path: Path, num_spks: int, sample_rate: int, on_bad: str = "stop",
                  need_references: bool = True, key: str = "data", min_samples: int = 1) -> Manifest:
    """Read and check ``path``; see the module docstring for what is checked. ``min_samples``: the shortest
    usable file (the models' encoder kernel)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{key}: manifest not found: {path}")
    root = str(path.resolve().parent)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        header = [h.strip() for h in (reader.fieldnames or [])]
        sources = [f"s{i + 1}_wav" for i in range(num_spks)]
        missing = [c for c in ("ID", "mix_wav") if c not in header]
        present = [c for c in sources if c in header]
        extra = [c for c in header if re.fullmatch(r"s\d+_wav", c) and c not in sources]
        if extra:
            raise DataError(f"{path}: has column(s) {', '.join(extra)} but num_spks is {num_spks}: its mixtures hold "
                            f"more sources than the models separate; set num_spks (and the models' number of "
                            f"sources) to match, or give a manifest with s1_wav..s{num_spks}_wav")
        if need_references and len(present) < num_spks:
            missing += [c for c in sources if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}; a manifest needs ID, mix_wav and "
                            f"s1_wav..s{num_spks}_wav (LibriMix / WSJ0-2mix style); columns found: "
                            f"{', '.join(header) or '(none)'}")
        if present and len(present) < num_spks:
            raise DataError(f"{path}: has {', '.join(present)} but not all of s1_wav..s{num_spks}_wav")
        cols = ["ID", "mix_wav"] + present
        rows: Dict[str, Dict[str, str]] = {}
        frames: Dict[str, int] = {}
        skipped: List[str] = []
        raws = list(reader)
        bar = Progress(len(raws), f"checking {path.name}", enabled=dist.is_main())
        try:
            for line, raw in enumerate(raws, start=2):
                row = {k.strip(): (v or "").strip().replace("$data_root", root)
                       for k, v in raw.items() if k is not None}
                absent = [k.strip() for k, v in raw.items() if k is not None and v is None]
                if absent:
                    problem = (f"no cell for column(s) {', '.join(absent)} (the row has fewer cells than the "
                               f"header's {len(header)} columns)")
                elif None in raw:
                    problem = f"{len(raw[None])} cell(s) more than the header's {len(header)} columns"
                else:
                    problem, length = _row_problem(row, cols, sample_rate, path, min_samples)
                if problem is None and row["ID"] in rows:
                    problem = f"duplicate ID {row['ID']!r}"
                if problem is None:
                    rows[row["ID"]] = {c: row[c] for c in cols}
                    frames[row["ID"]] = length
                else:
                    message = f"{path}, row {line} (ID {row.get('ID') or '?'}): {problem}"
                    if on_bad == "stop":
                        raise DataError(message + "; fix the row, or set data.on_bad=skip to drop bad rows")
                    skipped.append(message)
                bar.update()
        finally:
            bar.close()
    if not rows:
        raise DataError(f"{path}: no usable rows" + (f" ({len(skipped)} skipped; first: {skipped[0]})"
                                                    if skipped else ""))
    return Manifest(path=path, rows=rows, sources=present, skipped=skipped, frames=frames)


def _read(path: str) -> torch.Tensor:
    try:
        return sb.dataio.dataio.read_audio(path)
    except Exception as exc:
        raise DataError(f"cannot read audio {path}: {exc}") from None


def dataset(manifest: Manifest, segment: int = 0, random_offset: bool = False) -> DynamicItemDataset:
    """A DynamicItemDataset giving ``id``, ``mix_sig`` and ``s{i}_sig``; ``segment`` > 0 crops to that many
    samples (from the start, or a random offset for augmented training). A manifest with rows without
    references also gives ``labelled`` (their sources are silent placeholders, never a target).

    Random offsets come from torch's generator, as SpeechBrain's augmentations draw theirs: in the main process
    it is the one the Brain checkpoints, and each DataLoader worker's is seeded by the DataLoader from it every
    epoch, so the crops differ between epochs and workers and a resumed run draws the ones it would have."""
    mixed = manifest.unlabelled > 0
    ds = DynamicItemDataset({k: {**{s: "" for s in manifest.sources}, **v} for k, v in manifest.rows.items()})
    keys = ["mix_wav"] + manifest.sources

    @sb.utils.data_pipeline.takes(*keys)
    @sb.utils.data_pipeline.provides("mix_sig", *[k.replace("_wav", "_sig") for k in manifest.sources])
    def load(*paths):
        mix = _read(paths[0])
        sigs = [mix] + [_read(p) if p else torch.zeros_like(mix) for p in paths[1:]]
        if segment and sigs[0].shape[0] > segment:
            start = int(torch.randint(0, sigs[0].shape[0] - segment + 1, ())) if random_offset else 0
            sigs = [s[start:start + segment] for s in sigs]
        yield from sigs

    sb.dataio.dataset.add_dynamic_item([ds], load)
    keys = ["id", "mix_sig"] + [k.replace("_wav", "_sig") for k in manifest.sources]
    if mixed:
        first = manifest.sources[0]

        @sb.utils.data_pipeline.takes(first)
        @sb.utils.data_pipeline.provides("labelled")
        def labelled(path):
            return bool(path)

        sb.dataio.dataset.add_dynamic_item([ds], labelled)
        keys.append("labelled")
    sb.dataio.dataset.set_output_keys([ds], keys)
    return ds


def targets(batch, num_spks: int) -> Optional[torch.Tensor]:
    """Reference sources of a PaddedBatch as [B, T, C], or None for a mixtures-only batch."""
    if not hasattr(batch, "s1_sig"):
        return None
    return torch.stack([getattr(batch, f"s{i + 1}_sig").data for i in range(num_spks)], dim=-1)


def labelled(batch) -> Optional[torch.Tensor]:
    """Which examples of a PaddedBatch have references ([B] bool), or None when all of them do."""
    flags = getattr(batch, "labelled", None)
    if flags is None or all(flags):
        return None
    return torch.as_tensor(list(flags), dtype=torch.bool)


def summarize_skips(manifests: List[Manifest]) -> Tuple[int, List[str]]:
    skipped = [m for man in manifests for m in man.skipped]
    return len(skipped), skipped

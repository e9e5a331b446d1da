"""Test metrics: SI-SNRi and SDRi per utterance, a per-utterance CSV and a few separated examples as wav.

SI-SNR uses SpeechBrain's ``cal_si_snr`` after PIT alignment; SDR is BSS-eval's (mir_eval, as
SpeechBrain's separation recipes report it). Improvements are over the unprocessed mixture. The CSV is
written atomically and the examples folder is filled beside its place and swapped in whole, so an
interrupted evaluation leaves no half-written CSV and no partial or stale set of wavs. The pass shows a
progress bar per utterance (off with ``KDHUB_PROGRESS=0``).
"""
from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import speechbrain as sb
import torch
from speechbrain.nnet.losses import cal_si_snr

from kdhub.checkpoint import atomic_write_folder, atomic_write_text
from kdhub.progress import Progress

from .data import targets as batch_targets
from .pit_kd import pit, reorder
from .synth import float_wav


def si_snr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """SI-SNR in dB per source: [B, T, C] -> [B, C]."""
    return -cal_si_snr(reference.transpose(0, 1), estimate.clone().transpose(0, 1))[0]


def _sdr(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    from mir_eval.separation import bss_eval_sources
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bss_eval_sources(reference, estimate, compute_permutation=False)[0]


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, num_spks: int, sample_rate: int, device="cpu",
             sdr: bool = True, csv_path: Optional[Path] = None, examples_dir: Optional[Path] = None,
             examples: int = 0, desc: str = "test") -> Dict[str, float]:
    """Mean SI-SNR, SI-SNRi (and SDR, SDRi) of ``model`` over ``data`` (one utterance per batch); ``desc``
    names the progress bar."""
    model.eval()
    rows: List[Dict[str, float]] = []
    waves: Dict[str, bytes] = {}
    loader = sb.dataio.dataloader.make_dataloader(data, batch_size=1, shuffle=False)
    bar = Progress(len(loader), desc)
    si_snri_sum = 0.0  # running sum for the bar: the mean so far without rescanning every row per utterance
    for n, batch in enumerate(loader):
        mix = batch.mix_sig.data.to(device)
        ref = batch_targets(batch, num_spks).to(device)
        raw = model(mix)
        est = reorder(raw, pit(raw, ref)[1])
        mixes = mix.unsqueeze(-1).repeat(1, 1, num_spks)
        row = {"ID": batch.id[0], "si-snr": si_snr(est, ref).mean().item()}
        row["si-snri"] = row["si-snr"] - si_snr(mixes, ref).mean().item()
        if sdr:
            r, e, m = (x[0].t().cpu().double().numpy() for x in (ref, est, mixes))
            row["sdr"] = float(_sdr(r, e).mean())
            row["sdri"] = row["sdr"] - float(_sdr(r, m).mean())
        rows.append(row)
        si_snri_sum += row["si-snri"]
        bar.update(postfix=f"si-snri {si_snri_sum / len(rows):.2f} dB")
        if examples_dir is not None and n < examples:
            waves[f"{batch.id[0]}_mix.wav"] = float_wav(mix[0].cpu().numpy(), sample_rate)
            for c in range(num_spks):
                waves[f"{batch.id[0]}_s{c + 1}_est.wav"] = float_wav(est[0, :, c].cpu().numpy(), sample_rate)
    bar.close()
    keys = [k for k in rows[0] if k != "ID"]
    if csv_path is not None:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["ID"] + keys)
        writer.writerows([r["ID"]] + [f"{r[k]:.4f}" for k in keys] for r in rows)
        atomic_write_text(csv_path, out.getvalue())
    if examples_dir is not None and examples > 0:
        atomic_write_folder(examples_dir, waves)
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


"""The embedded default data set: two-speaker 8 kHz mixtures from distinct synthetic voices.

Utterances are synthesised with espeak-ng and flite (Debian packages the install step pulls in) from
sentences drawn deterministically from a fixed word list; voices are split so that valid and test
voices never occur in training. Mixtures follow WSJ0-2mix practice: two different speakers, relative
level between -5 and 5 dB, the mixture the exact sum of the written sources (float WAV). Files and
LibriMix-style manifests (ID, duration, mix_wav, s1_wav, s2_wav) are built in a temporary folder that
is renamed into place when complete, so a failed or interrupted generation leaves nothing behind. Generation
shows one progress bar over every utterance spoken and every mixture written (off with ``KDHUB_PROGRESS=0``).
"""
from __future__ import annotations

import json
import math
import random
import shutil
import struct
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from kdhub import datadir
from kdhub.progress import Progress

GENERATOR_VERSION = 3

# (engine, voice, pitch, words per minute). Pitch and rate are fixed per voice so each voice is one speaker.
VOICES: Dict[str, List[Tuple[str, str, int, int]]] = {
    "train": [
        ("flite", "kal", 0, 0), ("flite", "kal16", 0, 0), ("flite", "awb", 0, 0),
        ("espeak", "m1", 40, 160), ("espeak", "m2", 35, 170), ("espeak", "m3", 50, 150),
        ("espeak", "m4", 45, 175), ("espeak", "f1", 60, 165), ("espeak", "f2", 70, 155),
        ("espeak", "f3", 55, 170), ("espeak", "adam", 40, 165), ("espeak", "belinda", 65, 160),
        ("espeak", "boris", 30, 150), ("espeak", "david", 45, 180), ("espeak", "linda", 75, 165),
        ("espeak", "max", 35, 160), ("espeak", "steph", 68, 170), ("espeak", "john", 50, 175),
    ],
    "valid": [("flite", "rms", 0, 0), ("espeak", "m5", 42, 165), ("espeak", "f4", 62, 160),
              ("espeak", "edward", 38, 170)],
    "test": [("flite", "slt", 0, 0), ("espeak", "m6", 48, 160), ("espeak", "f5", 66, 170),
             ("espeak", "Alicia", 58, 165), ("espeak", "robert", 36, 155)],
}

WORDS = (
    "the a one two three four five six seven eight nine ten red green blue yellow black white small big "
    "old new early late happy quiet loud bright dark warm cold fast slow river mountain garden window "
    "kitchen table paper letter music picture station market village forest ocean island bridge tower "
    "morning evening winter summer spring autumn teacher doctor farmer driver painter sailor student "
    "walks runs sings reads writes paints builds opens closes carries finds keeps brings takes leaves "
    "under over near behind beside across through before after during with without about around "
    "quickly slowly carefully gently often never always sometimes today tomorrow yesterday again "
    "apple orange lemon bread coffee water stone silver golden wooden glass cotton paper engine wheel "
    "number question answer story voice sound signal pattern message record moment minute second"
).split()


@dataclass(frozen=True)
class SynthSpec(datadir.GeneratedSpec):
    """Sizes of the embedded set; the folder name is derived from these, so each size has its own copy. The
    validation split is SpeechBrain's ``valid`` (``val`` here, as in every generated set's spec)."""

    VERSION: ClassVar[int] = GENERATOR_VERSION
    train: int = 1200
    val: int = 150
    test: int = 200
    sample_rate: int = 8000
    seconds: float = 1.0
    utterances_per_voice: int = 24

    @classmethod
    def from_config(cls, **embedded: Any) -> "SynthSpec":
        """The spec of a config's ``data.embedded`` section, whose validation size is ``valid``."""
        embedded = dict(embedded)
        if "valid" in embedded:
            embedded["val"] = embedded.pop("valid")
        return cls(**embedded)

    def count(self, split: str) -> int:
        return self.val if split == "valid" else getattr(self, split)


class SynthError(RuntimeError):
    """The text-to-speech programs are missing or failed; the message says what to install."""


class MissingProgramsError(SynthError, FileNotFoundError):
    """espeak-ng or flite is not on PATH. A FileNotFoundError, as running a missing program is, so the launcher
    reports it as bad input (one ``kdhub: error:`` line naming the programs) rather than a traceback."""


def _check_programs(voices: Sequence[Tuple[str, str, int, int]]) -> None:
    need = {"espeak": "espeak-ng", "flite": "flite"}
    missing = sorted({need[e] for e, *_ in voices if shutil.which(need[e]) is None})
    if missing:
        raise MissingProgramsError(
            f"the embedded speech data set needs {', '.join(missing)} (text-to-speech); install with: sudo "
            f"apt-get install {' '.join(missing)} (in a checkout, scripts/setup.sh does this), or point "
            f"data.source=csv at LibriMix-style manifests")


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 9)))


def _tts(voice: Tuple[str, str, int, int], text: str, sample_rate: int) -> np.ndarray:
    engine, name, pitch, wpm = voice
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "u.wav"
        if engine == "espeak":
            cmd = ["espeak-ng", "-v", f"en-us+{name}", "-p", str(pitch), "-s", str(wpm), "-w", str(out), text]
        else:
            cmd = ["flite", "-voice", name, "-t", text, "-o", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            raise SynthError(f"{cmd[0]} failed for voice {name!r}: {proc.stderr.strip() or proc.returncode}")
        wav, sr = sf.read(str(out), dtype="float32", always_2d=True)
    x = wav.astype(np.float64).mean(axis=1)
    if sr != sample_rate:  # polyphase filtering in numpy: the same bytes on every machine and thread count
        g = math.gcd(sr, sample_rate)
        x = resample_poly(x, sample_rate // g, sr // g)
    voiced = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    x = x[voiced[0]:voiced[-1] + 1]
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-8) * 0.05).astype(np.float32)


def _segment(x: np.ndarray, length: int, rng: random.Random) -> np.ndarray:
    if len(x) >= length:
        start = rng.randint(0, len(x) - length)
        return x[start:start + length]
    out = np.zeros(length, np.float32)
    start = rng.randint(0, length - len(x))
    out[start:start + len(x)] = x
    return out


def _utterances(spec: SynthSpec, split: str, workers: int, bar: Progress) -> Dict[int, List[np.ndarray]]:
    voices = VOICES[split]
    rng = random.Random(f"{spec.seed}-{split}-text")
    jobs = [(v, i, _sentence(rng)) for v in range(len(voices)) for i in range(spec.utterances_per_voice)]
    audio: List[np.ndarray] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for x in pool.map(lambda j: _tts(voices[j[0]], j[2], spec.sample_rate), jobs):
            audio.append(x)
            bar.update()
    out: Dict[int, List[np.ndarray]] = {v: [] for v in range(len(voices))}
    for (v, _, _), x in zip(jobs, audio):
        out[v].append(x)
    return out


def _write_split(spec: SynthSpec, split: str, n: int, root: Path, workers: int, bar: Progress) -> None:
    utts = _utterances(spec, split, workers, bar)
    rng = random.Random(f"{spec.seed}-{split}-mix")
    length = int(round(spec.seconds * spec.sample_rate))
    folders = {k: root / split / k for k in ("mix", "s1", "s2")}
    for f in folders.values():
        f.mkdir(parents=True)
    rows = ["ID,duration,mix_wav,s1_wav,s2_wav,spk1,spk2"]
    for i in range(n):
        v1, v2 = rng.sample(range(len(utts)), 2)
        s1 = _segment(rng.choice(utts[v1]), length, rng)
        s2 = _segment(rng.choice(utts[v2]), length, rng)
        gain = rng.uniform(-2.5, 2.5)
        s1, s2 = s1 * 10 ** (gain / 20), s2 * 10 ** (-gain / 20)
        peak = max(np.abs(s1 + s2).max(), np.abs(s1).max(), np.abs(s2).max())
        scale = min(1.0, 0.9 / max(peak, 1e-8))
        s1, s2 = (s1 * scale).astype(np.float32), (s2 * scale).astype(np.float32)
        mix = s1 + s2
        uid = f"{split}_{i:05d}"
        for k, sig in (("mix", mix), ("s1", s1), ("s2", s2)):
            (folders[k] / f"{uid}.wav").write_bytes(float_wav(sig, spec.sample_rate))
        names = [VOICES[split][v][1] for v in (v1, v2)]
        rows.append(f"{uid},{spec.seconds},$data_root/{split}/mix/{uid}.wav,$data_root/{split}/s1/{uid}.wav,"
                    f"$data_root/{split}/s2/{uid}.wav,{names[0]},{names[1]}")
        bar.update()
    (root / f"{split}.csv").write_text("\n".join(rows) + "\n")


def float_wav(signal: np.ndarray, sample_rate: int) -> bytes:
    """A mono 32-bit float WAV with nothing but the fmt and data chunks (libsndfile adds a PEAK chunk with
    a time stamp to float files, which would make identical audio differ byte-wise between runs)."""
    data = np.asarray(signal, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, sample_rate, sample_rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def default_root() -> Path:
    """Where embedded data sets live: ``$KDHUB_DATA_DIR/speech`` or ``~/.cache/kdhub/speech``."""
    return datadir.default_root("speech")


def ensure_embedded(spec: SynthSpec, root: Optional[Path] = None, workers: int = 4) -> Path:
    """The folder holding ``train.csv``, ``valid.csv`` and ``test.csv`` for ``spec``, generated if needed."""
    target = (Path(root) if root else default_root()) / f"synth-{spec.key()}"
    if (target / "spec.json").is_file():
        return target
    _check_programs([v for vs in VOICES.values() for v in vs])

    def build(tmp: Path) -> None:
        splits = ("train", "valid", "test")
        bar = Progress(sum(len(VOICES[s]) * spec.utterances_per_voice + spec.count(s) for s in splits),
                       "generating speech data")
        for split in splits:
            _write_split(spec, split, spec.count(split), tmp, workers, bar)
        bar.close()
        voices = {s: [v[1] for v in vs] for s, vs in VOICES.items()}
        (tmp / "spec.json").write_text(json.dumps({**asdict(spec), "version": GENERATOR_VERSION,
                                                   "voices": voices}, indent=2) + "\n")
    return datadir.build_once(target, build, "spec.json")


def generate(**spec) -> Path:
    """The registered data set: the generated set described by ``SynthSpec.from_config(**spec)``, built once; its folder."""
    return ensure_embedded(SynthSpec.from_config(**spec))

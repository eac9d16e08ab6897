"""Clips -> MFCC training windows, with the device's own front end, in parallel, cached on disk.

The cache key covers everything that changes the numbers: front-end settings and version, window
geometry, augmentation settings, seed, variants, the clip list itself and the code that cuts and
augments the windows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicegender.frontend import FRONTEND_VERSION, Frontend, FrontendSettings

from .augment import AugmentSettings, augment, coloured_noise
from .codehash import FEATURE_CODE, code_digest
from .windows import voiced_window_starts


@dataclass(frozen=True)
class WindowSettings:
    """Geometry of the model's input windows."""

    window_frames: int = 98
    """Frames per window (98 frames of 10 ms = 1 s of audio)."""
    train_hop_frames: int = 25
    """Hop between training windows cut from one clip (0.25 s)."""
    min_voiced: float = 0.6
    """Share of a window's frames that must be voiced for it to be used."""
    p_short: float = 0.5
    """Share of an augmented copy's windows cut down to a short stretch of speech (one word's worth)
    with background around it, as a microphone gives a single word inside a 1 s window."""
    short_seconds: tuple[float, float] = (0.25, 0.9)
    """Range of the speech kept in a short window, in seconds."""
    bed_snr_db: tuple[float, float] = (15.0, 60.0)
    """Range of the level of the background around a short window's speech, below the speech."""


@dataclass(frozen=True)
class FeatureSet:
    """MFCC windows and, per window, which clip and augmentation variant it came from."""

    x: np.ndarray
    """(n, window_frames, n_mfcc) float32 MFCC windows."""
    clip: np.ndarray
    """(n,) index into the clip list."""
    variant: np.ndarray
    """(n,) 0 = clean, 1.. = augmented copies."""

    def select(self, mask: np.ndarray) -> FeatureSet:
        return FeatureSet(self.x[mask], self.clip[mask], self.variant[mask])


def short_window(
    audio: np.ndarray, ws: WindowSettings, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """One window's audio cut down to a random stretch of speech (``ws.short_seconds``) with 10 ms
    ramps, the rest replaced by a background bed: coloured noise ``ws.bed_snr_db`` below the speech,
    or (one time in six) digital silence, as a padded file gives."""
    n = audio.size
    keep = min(n, int(rng.uniform(*ws.short_seconds) * sample_rate))
    start = int(rng.integers(0, n - keep + 1))
    mask = np.zeros(n, np.float32)
    mask[start : start + keep] = 1.0
    ramp = min(int(0.01 * sample_rate), keep // 2)
    if ramp:
        mask[start : start + ramp] = np.linspace(0, 1, ramp, dtype=np.float32)
        mask[start + keep - ramp : start + keep] = np.linspace(1, 0, ramp, dtype=np.float32)
    speech = audio * mask
    if rng.random() < 1 / 6:
        return speech
    rms = float(np.sqrt(np.mean(audio[start : start + keep] ** 2))) if keep else 0.0
    level = rms * 10 ** (-rng.uniform(*ws.bed_snr_db) / 20)
    bed = coloured_noise(n, float(rng.choice([0.0, 1.0, 2.0])), rng) * level
    return (speech + bed * (1.0 - mask)).astype(np.float32)


def window_length(fs: FrontendSettings, ws: WindowSettings) -> int:
    """Samples of audio behind one window of ``ws.window_frames`` frames."""
    return (ws.window_frames - 1) * fs.hop_length + fs.win_length


def clip_window_starts(
    audio: np.ndarray, frontend: Frontend, ws: WindowSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The clip as its windows are cut from it, and the frames where they start. A clip shorter than a
    window (a single word) is padded with silence, as the device pads a file; windows are chosen on the
    clean audio, so every augmented copy covers the same speech."""
    audio = np.pad(audio, (0, max(0, window_length(frontend.settings, ws) - audio.size)))
    return audio, voiced_window_starts(audio, frontend, ws.window_frames, ws.train_hop_frames, ws.min_voiced)


def _clip_windows(args: tuple) -> tuple[np.ndarray, np.ndarray]:
    audio, female, fs, ws, aug, variants, seed = args
    frontend = Frontend(fs)
    hop, sr = frontend.settings.hop_length, frontend.settings.sample_rate
    window_samples = window_length(fs, ws)
    audio, starts = clip_window_starts(audio, frontend, ws)
    out, var = [], []
    rng = np.random.default_rng(seed)
    for v in range(variants + 1):
        # Frames of the whole clip equal the frames of each window cut from it (frames are not centred).
        audio_v = audio if v == 0 else augment(audio, aug, rng, female)
        frames = frontend.mfcc(audio_v)
        # Random crops: augmented copies shift their windows by up to one training hop.
        shift = int(rng.integers(0, ws.train_hop_frames)) if v else 0
        last = len(frames) - ws.window_frames
        for start in (min(s + shift, last) for s in starts):
            if v and rng.random() < ws.p_short:
                # Frames of a window's own samples equal the clip's frames there, so this is the
                # window the device would see with only that stretch of speech in it.
                source = audio_v[start * hop : start * hop + window_samples]
                out.append(frontend.mfcc(short_window(source, ws, sr, rng)))
            else:
                out.append(frames[start : start + ws.window_frames])
        var.extend([v] * len(starts))
    if not out:
        return np.zeros((0, ws.window_frames, frontend.settings.n_mfcc), np.float32), np.zeros(0, np.int8)
    return np.stack(out).astype(np.float32), np.asarray(var, np.int8)


def cache_key(
    clip_ids: Sequence[str],
    fs: FrontendSettings,
    ws: WindowSettings,
    aug: AugmentSettings,
    variants: int,
    seed: int,
    females: Sequence[bool] | None = None,
) -> str:
    blob = json.dumps(
        {
            "frontend": fs.to_dict(),
            "frontend_version": FRONTEND_VERSION,
            "code": code_digest(FEATURE_CODE),
            "windows": dataclasses.asdict(ws),
            "augment": dataclasses.asdict(aug),
            "variants": variants,
            "seed": seed,
            "clips": list(clip_ids),
            "females": None if females is None else list(females),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_path(
    cache_dir: Path | None,
    clip_ids: Sequence[str],
    fs: FrontendSettings,
    ws: WindowSettings,
    aug: AugmentSettings,
    variants: int,
    seed: int,
    females: Sequence[bool] | None = None,
) -> Path | None:
    """Where ``extract_windows`` keeps these windows (None without a cache folder)."""
    if cache_dir is None:
        return None
    labels = None if females is None else [bool(f) for f in females]
    return Path(cache_dir) / f"windows-{cache_key(clip_ids, fs, ws, aug, variants, seed, labels)}.npz"


def extract_windows(
    audios: Sequence[np.ndarray],
    clip_ids: Sequence[str],
    fs: FrontendSettings,
    ws: WindowSettings,
    aug: AugmentSettings,
    variants: int,
    seed: int,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    females: Sequence[bool] | None = None,
) -> FeatureSet:
    """MFCC windows from each clip: the clean audio plus ``variants`` augmented copies. With the clips'
    labels (``females``) augmentation may also move F0 towards the other gender's range."""
    labels = [None] * len(audios) if females is None else [bool(f) for f in females]
    path = cache_path(cache_dir, clip_ids, fs, ws, aug, variants, seed, females)
    if path is not None and path.exists():
        with np.load(path) as z:
            return FeatureSet(z["x"], z["clip"], z["variant"])
    if not audios:
        n = fs.n_mfcc
        return FeatureSet(
            np.zeros((0, ws.window_frames, n), np.float32), np.zeros(0, np.int32), np.zeros(0, np.int8)
        )
    # Per-clip seeds from one SeedSequence: the result doesn't depend on the number of workers.
    seeds = np.random.SeedSequence(seed).generate_state(len(audios))
    jobs = [
        (a, f, fs, ws, aug, variants, int(s))  # frozen dataclasses travel to the workers as they are
        for a, f, s in zip(audios, labels, seeds, strict=True)
    ]
    workers = workers or min(len(jobs), os.cpu_count() or 1) or 1
    xs, clips, vars_ = [], [], []
    # Spawned, not forked, workers: a fork of a process whose TensorFlow or BLAS threads hold a lock
    # can hang forever in the child (seen after training in the same process).
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = pool.map(_clip_windows, jobs, chunksize=4)
        if progress:
            from tqdm import tqdm

            # disable=None: a progress bar on a terminal only, not in logs.
            results = tqdm(results, total=len(jobs), desc="features", unit="clip", leave=False, disable=None)
        for i, (x, v) in enumerate(results):
            xs.append(x)
            vars_.append(v)
            clips.append(np.full(len(x), i, np.int32))
    fset = FeatureSet(np.concatenate(xs), np.concatenate(clips), np.concatenate(vars_))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=fset.x, clip=fset.clip, variant=fset.variant)
        tmp.replace(path)
    return fset

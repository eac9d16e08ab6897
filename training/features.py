"""Clips -> MFCC training windows, with the device's own front end, in parallel, cached on disk.

The cache key covers everything that changes the numbers: front-end settings and version, window
geometry, augmentation settings, seed, variants and the clip list itself.
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

from .augment import AugmentSettings, augment
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


def _clip_windows(args: tuple) -> tuple[np.ndarray, np.ndarray]:
    audio, female, fs_dict, ws_dict, aug_dict, variants, seed = args
    frontend = Frontend(FrontendSettings(**fs_dict))
    ws = WindowSettings(**ws_dict)
    aug = AugmentSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in aug_dict.items()})
    # Choose windows on the clean audio so every variant covers the same speech.
    starts = voiced_window_starts(audio, frontend, ws.window_frames, ws.train_hop_frames, ws.min_voiced)
    out, var = [], []
    rng = np.random.default_rng(seed)
    for v in range(variants + 1):
        # Frames of the whole clip equal the frames of each window cut from it (frames are not centred).
        frames = frontend.mfcc(audio if v == 0 else augment(audio, aug, rng, female))
        # Random crops: augmented copies shift their windows by up to one training hop.
        shift = int(rng.integers(0, ws.train_hop_frames)) if v else 0
        last = len(frames) - ws.window_frames
        out.extend(frames[min(s + shift, last) : min(s + shift, last) + ws.window_frames] for s in starts)
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
        (a, f, fs.to_dict(), dataclasses.asdict(ws), dataclasses.asdict(aug), variants, int(s))
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

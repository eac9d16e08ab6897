"""A teacher for distillation: a gender probe on Resemblyzer's speaker embeddings.

Resemblyzer 0.1.4 (Apache-2.0) ships a GE2E speaker encoder trained on thousands of VoxCeleb and
LibriSpeech speakers. It needs PyTorch, so it runs in a venv of its own (``.venv-teacher``, made on
first use) through ``teacher_worker.py``; its embeddings are cached per file. The probe, an L2
logistic regression on the 256 numbers, is fitted here in numpy on the training speakers only. For
distillation every training clip gets the probe's p_female from a probe that did not see its speaker
(cross-fitted by speaker folds), and its windows learn ``(1 - alpha) * label + alpha * p``.
Training time only: the device never sees any of this.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import sidecar
from .sidecar import ask_cached, file_key, python_between

RESEMBLYZER_VERSION = "0.1.4"
TEACHER_INSTALLS = (
    # On this machine pip takes the CPU build of torch 2.13.0 from local disk; elsewhere PyPI's.
    ("torch==2.13.0",),
    ("--no-deps", f"resemblyzer=={RESEMBLYZER_VERSION}"),  # it asks for an unpinned torch
    (
        "numpy==2.4.6",
        "scipy==1.17.1",
        "librosa==0.11.0",
        "webrtcvad-wheels==2.0.14.post1",
        "soundfile==0.14.0",
    ),
)
"""pip install steps, in order; Resemblyzer's dependencies as they were seen to work together."""
WORKER = Path(__file__).with_name("teacher_worker.py")
SPANS = ("whole", "1.0", "0.5")
"""The embeddings of a clip: all its speech, its first 1 s and its first 0.5 s."""
EMBEDDING_SIZE = 256


def ensure_venv(venv: Path) -> Path:
    """The teacher venv's python, made and filled first if needed (~1.2 GB with a CPU build of torch)."""

    def base() -> str:
        return python_between("Resemblyzer", [(3, 11), (3, 12), (3, 13)])

    return sidecar.ensure_venv(
        venv, "Resemblyzer", f"resemblyzer-{RESEMBLYZER_VERSION}", base, TEACHER_INSTALLS, "~1.2 GB"
    )


def _ask(requests: dict[str, dict], venv: Path, cache: Path) -> dict[str, dict]:
    return ask_cached("Resemblyzer", lambda: ensure_venv(venv), WORKER, requests, cache)


def _readable(path: Path, rec: dict) -> bool:
    if rec.get("error"):
        print(f"teacher: {path}: {rec['error']}", file=sys.stderr)
        return False
    return True


def embed(paths: Iterable[Path], venv: Path, cache: Path) -> dict[Path, dict[str, np.ndarray]]:
    """Embeddings (``SPANS`` -> 256 floats) of every readable clip in ``paths``; unreadable ones are left
    out with a warning. Cached in ``cache`` (JSON lines) by file content."""
    keys = {Path(p): file_key(Path(p)) for p in paths}
    found = _ask({k: {"path": str(p.resolve())} for p, k in keys.items()}, venv, cache)
    return {
        p: {span: np.asarray(found[k][span], np.float32) for span in SPANS}
        for p, k in keys.items()
        if _readable(p, found[k])
    }


def embed_windows(
    starts: dict[Path, Sequence[float]], seconds: float, venv: Path, cache: Path
) -> dict[Path, np.ndarray]:
    """Embeddings (n, 256) of windows of ``seconds`` starting at ``starts[path]`` (seconds) in each
    readable clip, silences and all. Cached in ``cache`` by file content and windows."""
    requests, keys = {}, {}
    for p, st in starts.items():
        st = [round(float(t), 4) for t in st]
        keys[p] = f"{file_key(Path(p))}|{seconds}|{hashlib.sha256(json.dumps(st).encode()).hexdigest()[:16]}"
        requests[keys[p]] = {"path": str(Path(p).resolve()), "starts": st, "seconds": seconds}
    found = _ask(requests, venv, cache)
    return {
        p: np.asarray(found[k]["windows"], np.float32).reshape(-1, EMBEDDING_SIZE)
        for p, k in keys.items()
        if _readable(p, found[k])
    }


@dataclass(frozen=True)
class Probe:
    """L2-regularised logistic regression: p_female = sigmoid(x . coef + bias)."""

    coef: np.ndarray
    """One weight per embedding dimension."""
    bias: float
    """The intercept."""

    def p_female(self, x: np.ndarray) -> np.ndarray:
        """p_female for each row of ``x``."""
        return 1.0 / (1.0 + np.exp(-(x @ self.coef + self.bias)))


def fit_probe(x: np.ndarray, female: np.ndarray, weight: np.ndarray, l2: float) -> Probe:
    """The probe minimising weighted log-loss (weights normalised to sum to the number of rows) plus
    ``l2`` * |coef|^2 / 2, by Newton's method (the problem is small and convex)."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))]).astype(np.float64)
    w = weight * (n / weight.sum())
    y = female.astype(np.float64)
    theta = np.zeros(d + 1)
    ridge = np.full(d + 1, l2)
    ridge[-1] = 0.0  # the intercept is not shrunk
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(xb @ theta)))
        grad = xb.T @ (w * (p - y)) + ridge * theta
        hess = (xb * (w * p * (1 - p))[:, None]).T @ xb + np.diag(ridge) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return Probe(theta[:-1].astype(np.float32), float(theta[-1]))


def weighted_log_loss(p: np.ndarray, female: np.ndarray, weight: np.ndarray) -> float:
    """Mean log-loss, weighted."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    loss = -(female * np.log(p) + (1 - female) * np.log(1 - p))
    return float(np.sum(weight * loss) / np.sum(weight))


def speaker_folds(speaker: Sequence[str], folds: int = 5, seed: int = 0) -> dict[str, int]:
    """Each speaker's fold (0..folds-1), at random but repeatable."""
    names = sorted(set(speaker))
    return dict(
        zip(names, (np.random.default_rng(seed).permutation(len(names)) % folds).tolist(), strict=True)
    )


def fold_probes(
    x: np.ndarray,
    female: np.ndarray,
    weight: np.ndarray,
    speaker: Sequence[str],
    fold_of: dict[str, int],
    l2: float,
) -> list[Probe]:
    """One probe per fold, each fitted without that fold's speakers."""
    fold = np.array([fold_of[s] for s in speaker])
    return [
        fit_probe(x[fold != k], female[fold != k], weight[fold != k], l2)
        for k in range(max(fold_of.values()) + 1)
    ]


def cross_fitted(
    x: np.ndarray,
    female: np.ndarray,
    weight: np.ndarray,
    speaker: Sequence[str],
    l2: float,
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Each row's p_female from a probe fitted on the other speakers' folds: a clip's target never
    comes from a probe that heard its speaker."""
    fold_of = speaker_folds(speaker, folds, seed)
    probes = fold_probes(x, female, weight, speaker, fold_of, l2)
    return held_out_p(probes, fold_of, x, speaker)


def held_out_p(
    probes: list[Probe], fold_of: dict[str, int], x: np.ndarray, speaker: Sequence[str]
) -> np.ndarray:
    """p_female of each row of ``x`` (any embeddings of these speakers: clips, windows) from the probe
    that did not see its speaker."""
    fold = np.array([fold_of[s] for s in speaker])
    p = np.empty(len(x))
    for k, probe in enumerate(probes):
        if np.any(fold == k):
            p[fold == k] = probe.p_female(x[fold == k])
    return p


def soft_targets(female: np.ndarray, p_teacher: np.ndarray, alpha: float) -> np.ndarray:
    """Distillation targets: the label moved ``alpha`` of the way to the teacher's p_female."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha}: must be between 0 and 1")
    return ((1.0 - alpha) * female + alpha * p_teacher).astype(np.float32)

"""A reference VAD to measure ours against: silero-vad (MIT), its ONNX model run with onnxruntime.

Only the model file is taken from the silero-vad wheel (downloaded once with ``pip download --no-deps``
into the cache): the package itself pulls in torch, which this measurement does not need. Speech is
marked as ``get_speech_timestamps`` does by default, without its padding: a 32 ms chunk starts speech
at probability >= 0.5, speech ends where a silence began that lasted 100 ms (from a chunk below 0.35
until one at 0.5 or more), and stretches shorter than 250 ms are dropped.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VERSION = "6.2.3"
SAMPLE_RATE = 16000
CHUNK = 512
"""Samples per model call at 16 kHz (32 ms)."""
CONTEXT = 64
"""Samples of the previous chunk the model sees before each chunk."""


class ReferenceVadError(RuntimeError):
    """The reference VAD could not be fetched or loaded (one line, for the CLI)."""


@dataclass(frozen=True)
class SileroSettings:
    """How silero's speech probabilities become speech stretches (its own defaults)."""

    threshold: float = 0.5
    """Probability at which speech starts."""
    neg_threshold: float = 0.35
    """Probability below which speech may end."""
    min_silence_seconds: float = 0.1
    """Time below ``neg_threshold`` that ends speech."""
    min_speech_seconds: float = 0.25
    """Shorter speech stretches are dropped."""


def model_file(cache_dir: Path) -> Path:
    """silero-vad's ONNX model, fetched from its wheel on PyPI into ``cache_dir`` on first use."""
    target = Path(cache_dir) / f"silero-vad-{VERSION}" / "silero_vad.onnx"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "-d",
                tmp,
                f"silero-vad=={VERSION}",
            ],
            capture_output=True,
            text=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if r.returncode or not wheels:
            last = (r.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise ReferenceVadError(f"silero-vad {VERSION}: could not download it from PyPI ({last})")
        with zipfile.ZipFile(wheels[0]) as z:
            data = z.read("silero_vad/data/silero_vad.onnx")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


class SileroVad:
    """silero-vad on 16 kHz mono float audio: speech probability per 32 ms chunk, and speech per frame."""

    def __init__(self, cache_dir: Path, settings: SileroSettings | None = None) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise ReferenceVadError("silero-vad: needs onnxruntime (pip install '.[train]')") from exc
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = opts.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(model_file(cache_dir)), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.settings = settings or SileroSettings()

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability of each whole 32 ms chunk of ``audio`` (the last partial chunk zero-padded)."""
        audio = np.asarray(audio, np.float32)
        n = -(-audio.size // CHUNK)
        padded = np.zeros(CONTEXT + n * CHUNK, np.float32)
        padded[CONTEXT : CONTEXT + audio.size] = audio
        state = np.zeros((2, 1, 128), np.float32)
        sr = np.array(SAMPLE_RATE, np.int64)
        out = np.empty(n, np.float32)
        for i in range(n):
            x = padded[i * CHUNK : i * CHUNK + CONTEXT + CHUNK][None, :]
            p, state = self.session.run(None, {"input": x, "state": state, "sr": sr})
            out[i] = float(p.reshape(-1)[0])
        return out

    def speech_frames(self, audio: np.ndarray, n_frames: int, hop: int, win: int) -> np.ndarray:
        """silero's speech as a label per analysis frame of ours (``hop``/``win`` samples): a frame is
        speech when the chunk holding its centre is."""
        chunks = speech_chunks(self.probabilities(audio), self.settings)
        centre = np.arange(n_frames) * hop + win // 2
        return (
            chunks[np.minimum(centre // CHUNK, chunks.size - 1)] if chunks.size else np.zeros(n_frames, bool)
        )


def speech_chunks(probs: np.ndarray, s: SileroSettings) -> np.ndarray:
    """Which chunks are speech (bool per chunk), by the settings' thresholds and minimum lengths."""
    chunk_seconds = CHUNK / SAMPLE_RATE
    quiet_needed = s.min_silence_seconds / chunk_seconds
    speech = np.zeros(probs.size, bool)
    start = quiet_from = None
    for i, p in enumerate(probs):
        if p >= s.threshold:
            quiet_from = None
            start = i if start is None else start
        elif start is not None and p < s.neg_threshold:
            # As silero: the silence runs from the first quiet chunk until a chunk reaches the threshold.
            quiet_from = i if quiet_from is None else quiet_from
            if i - quiet_from >= quiet_needed:
                speech[start:quiet_from] = True
                start = quiet_from = None
    if start is not None:
        speech[start:] = True
    # Drop stretches shorter than the minimum.
    edges = np.flatnonzero(np.diff(np.concatenate(([0], speech.astype(np.int8), [0]))))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if (b - a) * chunk_seconds < s.min_speech_seconds:
            speech[a:b] = False
    return speech


@dataclass(frozen=True)
class Agreement:
    """Our VAD's frames against the reference's, over a set of clips."""

    reference_seconds: float
    """Speech the reference found."""
    ours_seconds: float
    """Speech ours found."""
    missed: float
    """Share of the reference's speech ours calls non-speech."""
    extra: float
    """Share of our speech the reference calls non-speech."""
    starved: float
    """Share of clips where the reference finds enough speech for a decision and ours does not."""


def agreement(pairs: list[tuple[np.ndarray, np.ndarray]], hop_seconds: float, min_speech: float) -> Agreement:
    """Compare per-frame labels (ours, reference) of each clip; ``min_speech`` seconds allow a decision."""
    ours = np.concatenate([o for o, _ in pairs]).astype(bool) if pairs else np.zeros(0, bool)
    ref = np.concatenate([r for _, r in pairs]).astype(bool) if pairs else np.zeros(0, bool)
    need = min_speech / hop_seconds
    starved = [r.sum() >= need and o.sum() < need for o, r in pairs]
    return Agreement(
        reference_seconds=float(ref.sum() * hop_seconds),
        ours_seconds=float(ours.sum() * hop_seconds),
        missed=float(np.mean(~ours[ref])) if ref.any() else 0.0,
        extra=float(np.mean(~ref[ours])) if ours.any() else 0.0,
        starved=float(np.mean(starved)) if pairs else 0.0,
    )

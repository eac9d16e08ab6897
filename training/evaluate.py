"""Score a model on labelled clips: window- and clip-level accuracy, per speaker, vs speech duration,
calibration and the share of "uncertain" clips."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from voicegender.frontend import Frontend
from voicegender.model import Thresholds, sigmoid, sliding_windows

from .windows import voiced_window_starts

WindowScorer = Callable[[np.ndarray], np.ndarray]
"""MFCC windows (n, frames, n_mfcc) -> log-odds of female (n,)."""

DURATIONS = (0.5, 1.0, 2.0, 3.0, 5.0)


@dataclass(frozen=True)
class EvalClip:
    audio: np.ndarray
    female: bool
    speaker: str
    name: str


@dataclass
class ClipScores:
    """Per-clip window log-odds for one model on one evaluation set."""

    clips: Sequence[EvalClip]
    window_logits: list[np.ndarray]
    by_duration: dict[float, np.ndarray] = field(default_factory=dict)
    """Clip log-odds using only the first d seconds of speech, per duration d."""

    @property
    def clip_logits(self) -> np.ndarray:
        return np.array([w.mean() if len(w) else 0.0 for w in self.window_logits])

    @property
    def y(self) -> np.ndarray:
        return np.array([c.female for c in self.clips])


def balanced_accuracy(y_female: np.ndarray, pred_female: np.ndarray) -> float:
    y, p = np.asarray(y_female, bool), np.asarray(pred_female, bool)
    recalls = []
    for cls in (True, False):
        sel = y == cls
        if sel.any():
            recalls.append(float(np.mean(p[sel] == cls)))
    return float(np.mean(recalls)) if recalls else float("nan")


class ClipWindows:
    """Cuts the model's input windows from a clip the way evaluation needs them."""

    def __init__(self, frontend: Frontend, window_frames: int, hop_frames: int) -> None:
        self.frontend, self.window_frames, self.hop_frames = frontend, window_frames, hop_frames
        s = frontend.settings
        self.window_samples = (window_frames - 1) * s.hop_length + s.win_length

    def voiced(self, audio: np.ndarray) -> np.ndarray:
        """Windows that are mostly speech; a clip shorter than a window is padded with silence."""
        audio = self._pad(audio)
        starts = voiced_window_starts(audio, self.frontend, self.window_frames, self.hop_frames, 0.5)
        if len(starts) == 0:
            starts = np.array([0])
        frames = self.frontend.mfcc(audio)
        return np.stack([frames[s : s + self.window_frames] for s in starts])

    def first_seconds(self, audio: np.ndarray, seconds: float) -> np.ndarray:
        """All windows over the first ``seconds`` of speech (from the first voiced frame)."""
        level = self.frontend.log_mel(audio).max(axis=1)
        onset = int(np.argmax(level > np.percentile(level, 95) - 35.0)) if len(level) else 0
        start = onset * self.frontend.settings.hop_length
        seg = self._pad(audio[start : start + int(seconds * self.frontend.settings.sample_rate)])
        return sliding_windows(self.frontend.mfcc(seg), self.window_frames, self.hop_frames)

    def _pad(self, audio: np.ndarray) -> np.ndarray:
        if len(audio) >= self.window_samples:
            return audio
        return np.pad(audio, (0, self.window_samples - len(audio)))


def score_clips(
    scorer: WindowScorer,
    clips: Sequence[EvalClip],
    cutter: ClipWindows,
    durations: Sequence[float] = DURATIONS,
) -> ClipScores:
    logits = [scorer(cutter.voiced(c.audio)) for c in clips]
    by_duration = {}
    for d in durations:
        by_duration[d] = np.array([scorer(cutter.first_seconds(c.audio, d)).mean() for c in clips])
    return ClipScores(clips, logits, by_duration)


def metrics(scores: ClipScores, thresholds: Thresholds) -> dict:
    """Everything the report shows for one model on one set, as plain numbers."""
    y = scores.y
    clip_logit = scores.clip_logits
    p = sigmoid(clip_logit)
    win_y = np.concatenate(
        [[c.female] * len(w) for c, w in zip(scores.clips, scores.window_logits, strict=True)]
    )
    win_logit = np.concatenate(scores.window_logits)
    labels = np.array([thresholds.label(float(v)) for v in p])
    speakers = sorted({c.speaker for c in scores.clips})
    spk = np.array([c.speaker for c in scores.clips])
    per_speaker = {
        s: {
            "clips": int(np.sum(spk == s)),
            "accuracy": float(np.mean((clip_logit[spk == s] > 0) == y[spk == s])),
            "female": bool(y[spk == s][0]),
        }
        for s in speakers
    }
    confusion = {
        truth: {
            lab: int(np.sum((labels == lab) & (y == (truth == "female"))))
            for lab in ("male", "female", "uncertain")
        }
        for truth in ("male", "female")
    }
    decided = labels != "uncertain"
    bins = np.linspace(0, 1, 11)
    idx = np.clip(np.digitize(p, bins) - 1, 0, 9)
    calibration = [
        {
            "p_mean": float(p[idx == b].mean()),
            "female_share": float(y[idx == b].mean()),
            "clips": int(np.sum(idx == b)),
        }
        for b in range(10)
        if np.any(idx == b)
    ]
    ece = float(sum(c["clips"] * abs(c["p_mean"] - c["female_share"]) for c in calibration) / max(len(p), 1))
    return {
        "clips": len(y),
        "speakers_female": len({c.speaker for c in scores.clips if c.female}),
        "speakers_male": len({c.speaker for c in scores.clips if not c.female}),
        "windows": len(win_y),
        "window_accuracy": float(np.mean((win_logit > 0) == win_y)),
        "window_balanced_accuracy": balanced_accuracy(win_y, win_logit > 0),
        "clip_accuracy": float(np.mean((clip_logit > 0) == y)),
        "clip_balanced_accuracy": balanced_accuracy(y, clip_logit > 0),
        "uncertain_share": float(np.mean(~decided)),
        "decided_accuracy": float(np.mean((labels[decided] == "female") == y[decided]))
        if decided.any()
        else None,
        "by_duration": {
            str(d): balanced_accuracy(y, v > 0)
            for d, v in sorted(scores.by_duration.items(), key=lambda kv: kv[0])
        },
        "confusion": confusion,
        "calibration": calibration,
        "ece": ece,
        "per_speaker": per_speaker,
        "worst_speakers": sorted(
            [kv for kv in per_speaker.items() if kv[1]["accuracy"] < 1.0], key=lambda kv: kv[1]["accuracy"]
        )[:5],
    }

"""Score a model on labelled clips, the way the device decides, and name every figure.

A clip's p_female is the sigmoid of the mean log-odds of its voiced 1 s windows (what the device
does for an utterance). The headline figures are the shares of clips **right / uncertain / wrong**
at the decision band the LEDs use (``Thresholds``); balanced accuracy at p = 0.5 (every clip forced
to a side) is kept beside them, with 1 s windows, speakers, ROC AUC, a band sweep, breakdowns by
gender and by what a corpus says about each clip (e.g. EmoDB's emotion), and accuracy against the
seconds of speech a decision had.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from voicegender.errors import VoicegenderError
from voicegender.frontend import Frontend
from voicegender.model import Thresholds, sigmoid, sliding_windows

from .windows import voiced_window_starts

WindowScorer = Callable[[np.ndarray], np.ndarray]
"""MFCC windows (n, frames, n_mfcc) -> log-odds of female (n,)."""

DURATIONS = (0.5, 1.0, 2.0, 3.0, 5.0)
"""Seconds of audio from speech onset at which a clip is also scored (``ClipScores.by_duration``)."""
BANDS = ((0.5, 0.5), (0.45, 0.55), (0.4, 0.6), (0.35, 0.65), (0.3, 0.7), (0.25, 0.75))
"""(male_below, female_above) bands of the sweep; (0.5, 0.5) leaves no clip uncertain."""
WILSON_Z = 1.959964
"""z of a two-sided 95% interval."""


@dataclass(frozen=True)
class EvalClip:
    audio: np.ndarray
    female: bool
    speaker: str
    name: str
    attributes: tuple[tuple[str, str], ...] = ()
    """(name, value) pairs to break the figures down by, e.g. ``(("emotion", "anger"),)``."""
    path: str = ""
    """The audio file, for the peer (which reads files); empty for synthetic clips."""


@dataclass
class ClipScores:
    """Per-clip window log-odds for one model on one evaluation set."""

    clips: Sequence[EvalClip]
    window_logits: list[np.ndarray]
    by_duration: dict[float, np.ndarray] = field(default_factory=dict)
    """Clip log-odds from only the first d seconds after speech onset, per d; NaN for a clip that
    has less than d seconds of audio after its onset (it cannot be scored at that length)."""
    seconds: np.ndarray | None = None
    """Length of each clip in seconds."""

    @property
    def clip_logits(self) -> np.ndarray:
        return np.array([w.mean() if len(w) else 0.0 for w in self.window_logits])

    @property
    def y(self) -> np.ndarray:
        return np.array([c.female for c in self.clips], dtype=bool)


def balanced_accuracy(y_female: np.ndarray, pred_female: np.ndarray) -> float:
    """Mean recall over the classes present (female, male)."""
    y, p = np.asarray(y_female, bool), np.asarray(pred_female, bool)
    recalls = []
    for cls in (True, False):
        sel = y == cls
        if sel.any():
            recalls.append(float(np.mean(p[sel] == cls)))
    return float(np.mean(recalls)) if recalls else float("nan")


def wilson_interval(k: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval of a share k/n (95% by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def roc_auc(y_female: np.ndarray, score: np.ndarray) -> float | None:
    """Probability that a random female clip scores above a random male clip (ties count half)."""
    from scipy.stats import rankdata

    y = np.asarray(y_female, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


VOICED_SHARE = "voiced share (WORLD F0)"
"""Attribute name of ``voiced_share_group``."""


def voiced_share_group(audio: np.ndarray, sample_rate: int) -> str:
    """The share of a clip's 5 ms frames that WORLD's F0 tracker (DIO + StoneMask) finds voiced, in
    three groups; short, pause-filled clips give the model little to go on."""
    import pyworld

    x = np.ascontiguousarray(audio, dtype=np.float64)
    f0, t = pyworld.dio(x, sample_rate, frame_period=5.0)
    share = float(np.mean(pyworld.stonemask(x, f0, t, sample_rate) > 0)) if len(f0) else 0.0
    return "0-40%" if share < 0.4 else "40-60%" if share <= 0.6 else "60-100%"


def decide(p_female: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """The device's label per clip: 'female', 'male' or 'uncertain'."""
    return np.array([thresholds.label(float(v)) for v in p_female], dtype=object)


def three_way(labels: np.ndarray, y_female: np.ndarray) -> dict:
    """Shares of clips right / uncertain / wrong, with counts and a 95% interval on the right share."""
    labels, y = np.asarray(labels, dtype=object), np.asarray(y_female, bool)
    n = len(y)
    truth = np.where(y, "female", "male")
    right = int(np.sum(labels == truth))
    uncertain = int(np.sum(labels == "uncertain"))
    lo, hi = wilson_interval(right, n)
    return {
        "n": n,
        "right_n": right,
        "uncertain_n": uncertain,
        "wrong_n": n - right - uncertain,
        "right": right / n if n else None,
        "uncertain": uncertain / n if n else None,
        "wrong": (n - right - uncertain) / n if n else None,
        "right_ci95": [lo, hi],
    }


def band_sweep(p_female: np.ndarray, y_female: np.ndarray, bands=BANDS) -> list[dict]:
    """Right / uncertain / wrong for each (male_below, female_above) band."""
    return [
        {"male_below": lo, "female_above": hi} | three_way(decide(p_female, Thresholds(lo, hi)), y_female)
        for lo, hi in bands
    ]


def best_threshold(p_female: np.ndarray, y_female: np.ndarray) -> dict:
    """The single threshold (no uncertain band) with the highest balanced accuracy on these clips.
    Chosen on the clips it is measured on, so it is an upper bound, not an estimate."""
    y = np.asarray(y_female, bool)
    candidates = np.unique(np.concatenate(([0.5], p_female)))
    scores = [balanced_accuracy(y, p_female >= t) for t in candidates]
    i = int(np.argmax(scores))
    return {"p_female": float(candidates[i]), "balanced_accuracy": float(scores[i])}


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

    def onset(self, audio: np.ndarray) -> int:
        """Sample index of the first frame within 35 dB of the clip's loud frames."""
        level = self.frontend.log_mel(audio).max(axis=1)
        frame = int(np.argmax(level > np.percentile(level, 95) - 35.0)) if len(level) else 0
        return frame * self.frontend.settings.hop_length

    def seconds_after_onset(self, audio: np.ndarray) -> float:
        return (len(audio) - self.onset(audio)) / self.frontend.settings.sample_rate

    def first_seconds(self, audio: np.ndarray, seconds: float) -> np.ndarray:
        """All windows over the first ``seconds`` of audio from speech onset."""
        start = self.onset(audio)
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
    # One frame of slack: a 2.0 s clip whose speech starts at 0 reaches 2 s.
    slack = cutter.frontend.settings.hop_length / cutter.frontend.settings.sample_rate
    available = np.array([cutter.seconds_after_onset(c.audio) for c in clips])
    by_duration = {}
    for d in durations:
        by_duration[d] = np.array(
            [
                scorer(cutter.first_seconds(c.audio, d)).mean() if a + slack >= d else np.nan
                for c, a in zip(clips, available, strict=True)
            ]
        )
    sr = cutter.frontend.settings.sample_rate
    return ClipScores(clips, logits, by_duration, np.array([len(c.audio) / sr for c in clips]))


def metrics(scores: ClipScores, thresholds: Thresholds) -> dict:
    """Everything the report shows for one model on one set, as plain numbers (shares in 0..1)."""
    if not len(scores.clips):
        raise VoicegenderError("evaluation: no clips to score")
    y = scores.y
    clip_logit = scores.clip_logits
    p = sigmoid(clip_logit)
    labels = decide(p, thresholds)
    win_y = np.concatenate(
        [[c.female] * len(w) for c, w in zip(scores.clips, scores.window_logits, strict=True)]
    )
    win_logit = np.concatenate(scores.window_logits)
    spk = np.array([c.speaker for c in scores.clips])
    per_speaker = {
        s: {
            "clips": int(np.sum(spk == s)),
            "accuracy": float(np.mean((clip_logit[spk == s] > 0) == y[spk == s])),
            "female": bool(y[spk == s][0]),
        }
        for s in sorted(set(spk.tolist()))
    }
    speakers_right = sum(v["accuracy"] > 0.5 for v in per_speaker.values())
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
    ece = float(sum(c["clips"] * abs(c["p_mean"] - c["female_share"]) for c in calibration) / len(p))
    band = three_way(labels, y)
    return {
        "clips": len(y),
        "speakers_female": len({c.speaker for c in scores.clips if c.female}),
        "speakers_male": len({c.speaker for c in scores.clips if not c.female}),
        "median_clip_seconds": None if scores.seconds is None else float(np.median(scores.seconds)),
        "thresholds": {"male_below": thresholds.male_below, "female_above": thresholds.female_above},
        "band": band,
        "band_by_gender": {
            g: three_way(labels[y == (g == "female")], y[y == (g == "female")])
            for g in ("female", "male")
            if np.any(y == (g == "female"))
        },
        "uncertain_share": band["uncertain"],
        "decided_accuracy": float(np.mean((labels[decided] == "female") == y[decided]))
        if decided.any()
        else None,
        "clip_accuracy": float(np.mean((clip_logit > 0) == y)),
        "clip_balanced_accuracy": balanced_accuracy(y, clip_logit > 0),
        "clip_auc": roc_auc(y, clip_logit),
        "windows": len(win_y),
        "window_accuracy": float(np.mean((win_logit > 0) == win_y)),
        "window_balanced_accuracy": balanced_accuracy(win_y, win_logit > 0),
        "speakers": {
            "n": len(per_speaker),
            "right_n": speakers_right,
            "right": speakers_right / len(per_speaker),
            "right_ci95": list(wilson_interval(speakers_right, len(per_speaker))),
            "wrong": sorted(s for s, v in per_speaker.items() if v["accuracy"] < 0.5),
        },
        "band_sweep": band_sweep(p, y),
        "best_threshold": best_threshold(p, y),
        "by_duration": {
            str(d): _at_duration(v, y, thresholds) for d, v in sorted(scores.by_duration.items())
        },
        "by_attribute": _by_attribute(scores.clips, labels, y),
        "confusion": confusion,
        "calibration": calibration,
        "ece": ece,
        "per_speaker": per_speaker,
        "worst_speakers": sorted(
            [kv for kv in per_speaker.items() if kv[1]["accuracy"] < 1.0], key=lambda kv: kv[1]["accuracy"]
        )[:5],
    }


def _at_duration(logits: np.ndarray, y: np.ndarray, thresholds: Thresholds) -> dict:
    """Figures from the clips long enough for this duration (``reach``: their share of the set)."""
    ok = ~np.isnan(logits)
    out = {"reach": float(np.mean(ok)), "clips": int(ok.sum())}
    if ok.any():
        out |= three_way(decide(sigmoid(logits[ok]), thresholds), y[ok])
        out["balanced_accuracy"] = balanced_accuracy(y[ok], logits[ok] > 0)
    return out


def _by_attribute(clips: Sequence[EvalClip], labels: np.ndarray, y: np.ndarray) -> dict:
    """{attribute: {value: {"all"/"female"/"male": three_way}}} for every attribute the clips carry."""
    values: dict[str, np.ndarray] = {}
    for name in sorted({k for c in clips for k, _ in c.attributes}):
        values[name] = np.array([dict(c.attributes).get(name, "") for c in clips], dtype=object)
    out: dict[str, dict] = {}
    for name, column in values.items():
        out[name] = {}
        for value in sorted(set(column.tolist()) - {""}):
            sel = column == value
            out[name][value] = {"all": three_way(labels[sel], y[sel])} | {
                g: three_way(labels[sel & (y == (g == "female"))], y[sel & (y == (g == "female"))])
                for g in ("female", "male")
                if np.any(sel & (y == (g == "female")))
            }
    return out

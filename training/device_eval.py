"""Score clips exactly as a user of the device sees them: each clip through ``classify_audio`` (the
daemon's VAD, windows, pooling and uncertain band), whole and cut after its first 0.3-3 s of speech.

The float network is scored the same way, as a float TFLite file with the int8 file's metadata run by
the device's own runtime, so "int8 vs float" compares two models and nothing else.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicegender.decision import DecisionSettings
from voicegender.model import Model, load_model, metadata_path, seal
from voicegender.pipeline import classify_audio
from voicegender.vad import VadSettings, VoiceActivityDetector

from .evaluate import ClipScores, EvalClip, three_way

SPEECH_LENGTHS = (0.3, 0.5, 0.8, 1.0, 2.0, 3.0)
"""Seconds of speech (by the device's VAD) after which a clip is cut and decided again."""
TAIL_SECONDS = 0.5
"""Silence after a cut, so the utterance ends as it does when a speaker stops."""


@dataclass(frozen=True)
class Verdict:
    """The device's decision on one clip (or one cut of it)."""

    label: str
    """male / female / uncertain / no_speech."""
    logit: float
    """Pooled log-odds of female; NaN when there was no decision (too little or no speech)."""
    speech_seconds: float
    """Speech the VAD heard."""


def float_twin(keras_model, device_model: Model, where: Path) -> Model:
    """The float network as a TFLite file beside ``where``, with the int8 model's metadata."""
    import tensorflow as tf

    from .tflog import native_output_to_log

    with native_output_to_log(True):
        tflite = tf.lite.TFLiteConverter.from_keras_model(keras_model).convert()
    where = Path(where)
    where.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(metadata_path(device_model.path).read_text())
    for key in ("model_bytes", "model_sha256", "settings_sha256"):
        data.pop(key, None)
    where.write_bytes(tflite)
    metadata_path(where).write_text(json.dumps(seal(data, tflite), indent=2, sort_keys=True) + "\n")
    with native_output_to_log(True):
        return load_model(where)


def _verdict(audio: np.ndarray, model: Model, vad: VadSettings, decision: DecisionSettings) -> Verdict:
    d = classify_audio(audio, 16000, model, vad, decision)
    logit = math.log(d.p_female / (1 - d.p_female)) if 0 < d.p_female < 1 else math.nan
    if d.p_female in (0.0, 1.0):
        logit = math.copysign(30.0, d.p_female - 0.5)
    return Verdict(d.label, logit, d.speech_seconds)


def speech_cuts(audio: np.ndarray, vad: VadSettings, lengths: Sequence[float]) -> dict[float, np.ndarray]:
    """The clip up to where its VAD speech first totals each length, plus ``TAIL_SECONDS`` of silence;
    lengths the clip never reaches are left out."""
    detector = VoiceActivityDetector(vad)
    labels = np.concatenate((detector.push(audio), detector.flush()))
    fe = detector.frontend
    cum = np.cumsum(labels)
    cuts = {}
    for length in lengths:
        need = round(length * fe.sample_rate / fe.hop_length)
        if not len(cum) or cum[-1] < need:
            continue
        frame = int(np.searchsorted(cum, need))
        end = frame * fe.hop_length + fe.win_length
        tail = np.zeros(int(TAIL_SECONDS * fe.sample_rate), np.float32)
        cuts[length] = np.concatenate((audio[:end], tail))
    return cuts


def score_set(
    model: Model,
    clips: Sequence[EvalClip],
    vad: VadSettings | None = None,
    decision: DecisionSettings | None = None,
    lengths: Sequence[float] = SPEECH_LENGTHS,
) -> tuple[ClipScores, list[Verdict], float]:
    """Every clip decided whole and at each speech length -> (scores for ``evaluate.metrics``, the
    whole-clip verdicts, CPU seconds per second of audio for the whole-clip decisions).

    In the scores an undecided clip has no window log-odds (p = 0.5, so "uncertain" at any band) and
    a clip that never reaches a length has NaN there."""
    vad, decision = vad or VadSettings(), decision or DecisionSettings()
    verdicts, by_length = [], {length: [] for length in lengths}
    cpu = 0.0
    for clip in clips:
        started = time.process_time()
        verdict = _verdict(clip.audio, model, vad, decision)
        cpu += time.process_time() - started
        verdicts.append(verdict)
        cuts = speech_cuts(clip.audio, vad, lengths)
        for length in lengths:
            cut = cuts.get(length)
            v = None if cut is None else _verdict(cut, model, vad, decision)
            by_length[length].append(math.nan if v is None else (0.0 if math.isnan(v.logit) else v.logit))
    audio_seconds = sum(len(c.audio) for c in clips) / 16000
    scores = ClipScores(
        clips,
        [np.array([] if math.isnan(v.logit) else [v.logit]) for v in verdicts],
        {length: np.array(values) for length, values in by_length.items()},
        np.array([len(c.audio) / 16000 for c in clips]),
    )
    return scores, verdicts, cpu / audio_seconds if audio_seconds else math.nan


def balanced_right(labels: Sequence[str], female: np.ndarray) -> float:
    """Mean over the two genders of the share of clips labelled right (undecided counts as not right):
    balanced accuracy as a user sees it, and as the peer's is counted."""
    labels, female = np.asarray(labels, dtype=object), np.asarray(female, bool)
    truth = np.where(female, "female", "male")
    shares = [
        float(np.mean(labels[female == g] == truth[female == g]))
        for g in (True, False)
        if np.any(female == g)
    ]
    return float(np.mean(shares)) if shares else math.nan


def headline(verdicts: Sequence[Verdict], female: np.ndarray, model: Model) -> dict:
    """Right / uncertain / wrong at the model's band (no_speech counted as uncertain, and also on its
    own), balanced accuracy at p = 0.5 with undecided clips not right."""
    labels = np.array(["uncertain" if v.label == "no_speech" else v.label for v in verdicts], dtype=object)
    p50 = np.array(
        ["undecided" if math.isnan(v.logit) else ("female" if v.logit > 0 else "male") for v in verdicts],
        dtype=object,
    )
    return {
        **three_way(labels, female),
        "no_speech": float(np.mean([v.label == "no_speech" for v in verdicts])) if verdicts else math.nan,
        "balanced_right": balanced_right(labels, female),
        "balanced_accuracy_p50": balanced_right(p50, female),
    }

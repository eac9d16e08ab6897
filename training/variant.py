"""The shipped recipe trained again with one thing changed (fewer speakers, other targets), exported to
int8 and scored through the device pipeline: what the measurement scripts compare (cached models)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from voicegender.model import Model, load_model

from .codehash import MODEL_CODE, array_digest, code_digest
from .device_eval import EvalClip, headline, score_set
from .export import to_int8_tflite, write_model
from .loco import load_int8, save_int8
from .ship import ShipSettings, TrainingData, speaker_key
from .train import Normaliser, fit
from .weights import window_weights


def train_variant(
    data: TrainingData,
    s: ShipSettings,
    keep_clip: np.ndarray,
    steps: int,
    cache: Path,
    targets: np.ndarray | None = None,
    teacher_embeddings: np.ndarray | None = None,
    teacher_weight: float = 0.0,
) -> tuple[bytes, Normaliser]:
    """(int8 tflite bytes, normaliser) of the recipe trained for ``steps`` on the windows of the kept
    training clips, learning ``targets`` (one per training window; default the labels) and, with
    ``teacher_embeddings`` and a ``teacher_weight``, those too (``train.fit``). Cached, keyed on the
    speakers, the windows and targets, the settings and the training code."""
    clips = [c for c, k in zip(data.train_clips, keep_clip, strict=True) if k]
    renumber = np.cumsum(keep_clip) - 1
    mask = keep_clip[data.train_set.clip]
    subset = data.train_set.select(mask)
    y = (data.y_train if targets is None else targets)[mask]
    key = json.dumps(
        [
            sorted(speaker_key(c) for c in clips),
            int(mask.sum()),
            steps,
            dataclasses.asdict(s.train),
            dataclasses.asdict(s.cnn),
            code_digest(MODEL_CODE),
            # The windows themselves: window and augmentation settings change them, not the speakers.
            array_digest(subset.x, np.asarray(y, np.float32)),
        ]
    )
    hint = None
    if teacher_embeddings is not None and teacher_weight:
        hint = teacher_embeddings[mask]
        key += f"{teacher_weight}" + array_digest(hint)
    where = cache / f"curve-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    cached = load_int8(where)
    if cached is not None:
        return cached
    weights = window_weights(clips, renumber[subset.clip])
    model, norm, _ = fit(
        subset.x,
        y,
        data.val_set.x,
        data.y_val,
        s.train,
        s.cnn,
        steps=steps,
        sample_weight=weights,
        teacher_embeddings=hint,
        teacher_weight=teacher_weight,
    )
    tflite = to_int8_tflite(model, norm(subset.x), seed=s.train.seed)
    save_int8(where, tflite, norm)
    import keras

    keras.backend.clear_session()
    return tflite, norm


def device_model(tflite: bytes, norm: Normaliser, s: ShipSettings) -> Model:
    """The int8 model as the device loads it (metadata from the recipe's settings)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        write_model(
            path, tflite, s.frontend, s.windows.window_frames, s.infer_hop_frames, norm, s.thresholds, {}
        )
        return load_model(path)


def headline_of(model: Model, clips: list[EvalClip]) -> dict:
    """Whole-clip figures (balanced accuracy, right / uncertain / wrong) of ``model`` on ``clips``."""
    scores, verdicts, _ = score_set(model, clips, lengths=())
    return headline(verdicts, scores.y, model)

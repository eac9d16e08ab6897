"""Leave-one-corpus-out: for each family of training corpora, a model trained without it and tested on
all of its speakers, through the device pipeline at the shipped band, the peer beside it.

It answers "how does the model do on recordings from a source it has never heard?" for the sources we
have labels for. Each model trains on the shipped model's own training windows minus the family's,
for as many gradient steps as the shipped model (fewer steps left a model without Common Voice
calling every clip "uncertain"), and is exported to int8 like the shipped one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .codehash import MODEL_CODE, array_digest, code_digest
from .datasets import Clip
from .device_eval import headline, score_set
from .evaluate import EvalClip, metrics
from .export import to_int8_tflite
from .families import family_of
from .features import FeatureSet
from .tflog import native_output_to_log
from .train import Normaliser, fit
from .weights import window_weights

log = logging.getLogger(__name__)


def run_loco(
    train_clips: list[Clip],
    train_set: FeatureSet,
    y_train: np.ndarray,
    val_clips: list[Clip],
    val_set: FeatureSet,
    y_val: np.ndarray,
    held_out: dict[str, list[EvalClip]],
    samples: dict[str, list[EvalClip]],
    ship_settings: Any,
    write: Callable[[str, bytes, Any], Any],
    cache_dir: Path,
    peer: Callable[[list[EvalClip]], dict[str, Any] | None],
    steps: int,
) -> dict[str, Any]:
    """{family: figures} for every family in ``held_out`` (its clips, all speakers), and on ``samples``
    (its test-split clips) beside ``peer``'s figures on the same clips. ``write(name, tflite, norm)``
    writes a model file and returns it loaded for the device runtime. Each model trains ``steps``
    gradient steps (the shipped model's)."""
    import keras

    s = ship_settings
    train_family = np.array([family_of(c.corpus) for c in train_clips], dtype=object)[train_set.clip]
    val_family = np.array([family_of(c.corpus) for c in val_clips], dtype=object)[val_set.clip]
    out: dict[str, Any] = {}
    all_weights = window_weights(train_clips, train_set.clip)  # the same for every family left out
    for family, eclips in held_out.items():
        keep, keep_val = train_family != family, val_family != family
        subset = train_set.select(keep)
        weights = all_weights[keep]
        key = json.dumps(
            [
                family,
                int(keep.sum()),
                steps,
                dataclasses.asdict(s.train),
                dataclasses.asdict(s.cnn),
                code_digest(MODEL_CODE),
                array_digest(subset.x, y_train[keep]),
            ]
        )
        where = Path(cache_dir) / f"loco-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        cached = load_int8(where)
        if cached is not None:
            tflite, norm = cached
        else:
            log.info("leave-one-corpus-out: training without %s (%d windows)", family, len(subset.x))
            model, norm, _ = fit(
                subset.x,
                y_train[keep],
                val_set.x[keep_val],
                y_val[keep_val],
                s.train,
                s.cnn,
                steps=steps,
                sample_weight=weights / weights.mean(),
            )
            with native_output_to_log(True):
                tflite = to_int8_tflite(model, norm(subset.x), seed=s.train.seed)
            save_int8(where, tflite, norm)
            keras.backend.clear_session()
        device_model = write(family, tflite, norm)
        scores, verdicts, _ = score_set(device_model, eclips)
        figures = metrics(scores, device_model.metadata.thresholds)
        out[family] = {
            "int8": {
                "headline": headline(verdicts, scores.y, device_model),
                "band_by_gender": figures["band_by_gender"],
                "by_duration": figures["by_duration"],
                "by_attribute": figures["by_attribute"],
                "speakers": figures["speakers"],
                "clips": figures["clips"],
                "speakers_female": figures["speakers_female"],
                "speakers_male": figures["speakers_male"],
                "worst_speakers": figures["worst_speakers"],
            },
            "training_windows": int(keep.sum()),
            "steps": steps,
        }
        sample = samples.get(family, [])
        if sample:
            sample_scores, sample_verdicts, _ = score_set(device_model, sample)
            out[family]["sample"] = {"int8": headline(sample_verdicts, sample_scores.y, device_model)}
            peer_figures = peer(sample)
            if peer_figures is not None:
                out[family]["sample"]["peer"] = peer_figures
    return out


def save_int8(where: Path, tflite: bytes, norm: Normaliser) -> None:
    """Cache an int8 model and its normaliser in the directory ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "model.tflite").write_bytes(tflite)
    np.savez(where / "norm.npz", mean=norm.mean, std=norm.std, relative_c0=norm.relative_c0)


def load_int8(where: Path) -> tuple[bytes, Normaliser] | None:
    """The int8 model and normaliser ``save_int8`` cached in ``where``, or None."""
    if not (where / "model.tflite").exists():
        return None
    with np.load(where / "norm.npz") as z:
        return (where / "model.tflite").read_bytes(), Normaliser(z["mean"], z["std"], bool(z["relative_c0"]))

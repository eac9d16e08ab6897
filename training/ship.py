"""Reproduce the shipped model from the shared data: read, split, extract, train, export, evaluate,
report and write the model card. ``voicegender-train ship`` runs this."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicegender.errors import VoicegenderError
from voicegender.frontend import Frontend, FrontendSettings
from voicegender.model import Thresholds, load_model

from .audio_decode import load_batch
from .augment import AugmentSettings
from .cnn import CnnSettings, count_macs
from .datasets import Clip, read_any, summarize
from .evaluate import ClipWindows, EvalClip, metrics, score_clips
from .export import to_int8_tflite, write_model
from .features import WindowSettings, extract_windows
from .modelcard import write_model_card
from .report import write_report
from .splits import SplitSettings, split_by_speaker
from .train import Normaliser, TrainSettings, fit, keras_scorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShipSettings:
    """Everything that decides the shipped model."""

    frontend: FrontendSettings = field(default_factory=FrontendSettings)
    """Front-end settings (stored in the model metadata)."""
    windows: WindowSettings = field(default_factory=WindowSettings)
    """Window geometry for training."""
    infer_hop_frames: int = 25
    """Hop between windows on the device (0.25 s)."""
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    """Augmentation of the training clips."""
    variants: int = 3
    """Augmented copies per training clip, besides the clean one."""
    split: SplitSettings = field(default_factory=SplitSettings)
    """Speaker-disjoint split."""
    train: TrainSettings = field(default_factory=TrainSettings)
    """Optimisation."""
    cnn: CnnSettings = field(default_factory=CnnSettings)
    """Network shape."""
    thresholds: Thresholds = field(default_factory=Thresholds)
    """Decision thresholds written into the metadata."""
    min_seconds: float = 0.5
    """Clips shorter than this are dropped (with a count)."""


# Training corpora may be shipped (licences allow it); EmoDB is evaluation only. LibriSpeech
# test-clean samples are held out: two of them are the project's test fixtures.
TRAIN_SOURCES = (
    ("librispeech", "LibriSpeech", "CC BY 4.0"),
    ("manifest", "more-speakers/vctk_samples", "CC BY 4.0"),
    ("manifest", "more-speakers/aishell3_sample", "Apache 2.0"),
    ("commonvoice", "commonvoice-fa", "CC0"),
)
# The Persian release is tiny; its unvalidated clips still add voices.
SHIP_CV_TABLES = ("validated", "other")
EVAL_ONLY = {
    "LibriSpeech test-clean (MP3, held out)": ("manifest", "more-speakers/librispeech_testclean_samples"),
    "EmoDB (German, acted; cross-corpus)": ("manifest", "emodb"),
}


def shipped_specs(data_dir: Path) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The shipped model's training corpora as (``kind:path``, licence) and its evaluation-only sets
    by name, under ``data_dir``."""
    data_dir = Path(data_dir)
    return (
        [(f"{kind}:{data_dir / rel}", licence) for kind, rel, licence in TRAIN_SOURCES],
        {name: f"{kind}:{data_dir / rel}" for name, (kind, rel) in EVAL_ONLY.items()},
    )


def read_clips(spec: str, cv_tables: tuple[str, ...]) -> list[Clip]:
    clips, stats = read_any(spec, cv_tables=cv_tables)
    log.info("%s", stats.summary())
    for warning in stats.warnings:
        log.warning("%s", warning)
    return clips


def load_clips(clips: list[Clip], min_seconds: float) -> tuple[list[Clip], list[np.ndarray], dict[str, int]]:
    result = load_batch(clips, min_seconds=min_seconds, progress=False)
    kept = [c for c, _ in result.loaded]
    return kept, [a for _, a in result.loaded], dict(result.reject_counts())


def eval_clips(clips: list[Clip], audio: list[np.ndarray]) -> list[EvalClip]:
    return [
        EvalClip(a, c.gender == "female", c.speaker or c.path.name, c.path.name)
        for c, a in zip(clips, audio, strict=True)
    ]


def read_eval_sets(eval_specs: dict[str, str], cv_tables: tuple[str, ...]) -> dict[str, list[EvalClip]]:
    """Evaluation-only sets by name; clips down to 0.1 s are kept (they are scored, not trained on)."""
    sets = {}
    for name, spec in eval_specs.items():
        kept, audio, _ = load_clips(read_clips(spec, cv_tables), 0.1)
        sets[name] = eval_clips(kept, audio)
    return sets


def female_labels(clips: list[Clip]) -> np.ndarray:
    return np.array([c.gender == "female" for c in clips])


def run(
    data_dir: Path,
    out_model: Path,
    report_dir: Path,
    cache_dir: Path,
    settings: ShipSettings,
    baseline: bool = True,
) -> dict[str, Any]:
    """The shipped model: fixed training corpora and evaluation sets under ``data_dir``."""
    data_dir = Path(data_dir)
    return train_and_report(
        *shipped_specs(data_dir),
        out_model,
        report_dir,
        cache_dir,
        settings,
        cv_tables=SHIP_CV_TABLES,
        baseline_npz=data_dir / "commonvoice-kaggle-melmean" / "cv_melmean128.npz" if baseline else None,
    )


def run_custom(
    train_specs: list[str],
    eval_specs: list[str],
    out_model: Path,
    report_dir: Path,
    cache_dir: Path,
    settings: ShipSettings,
    cv_tables: tuple[str, ...] = ("validated",),
    steps: int | None = None,
) -> dict[str, Any]:
    """A model trained on the user's own datasets (``kind:path`` specs); no original-system baseline
    (it needs the original mel-mean features)."""
    return train_and_report(
        [(spec, "see the dataset's own licence") for spec in train_specs],
        {spec: spec for spec in eval_specs},
        out_model,
        report_dir,
        cache_dir,
        settings,
        cv_tables=cv_tables,
        steps=steps,
    )


def train_and_report(
    train_specs: list[tuple[str, str]],
    eval_specs: dict[str, str],
    out_model: Path,
    report_dir: Path,
    cache_dir: Path,
    settings: ShipSettings,
    cv_tables: tuple[str, ...] = ("validated",),
    steps: int | None = None,
    baseline_npz: Path | None = None,
) -> dict[str, Any]:
    """Read, split by speaker, extract, train, export int8, evaluate float and int8, report."""
    t0 = time.monotonic()
    s = settings
    out_model = Path(out_model)
    clips: list[Clip] = []
    for spec, _licence in train_specs:
        clips += read_clips(spec, cv_tables)
    split = split_by_speaker(clips, s.split)
    for warning in split.warnings:
        log.warning("%s", warning)
    train_clips, train_audio, train_rejects = load_clips(list(split.train), s.min_seconds)
    val_clips, val_audio, _ = load_clips(list(split.validation), s.min_seconds)
    test_clips, test_audio, _ = load_clips(list(split.test), s.min_seconds)
    if not train_clips:
        raise VoicegenderError("no usable training clips (see the skipped-file counts above)")
    log.info("train %d clips, validation %d, test %d", len(train_clips), len(val_clips), len(test_clips))

    fs, ws = s.frontend, s.windows
    train_set = extract_windows(
        train_audio,
        [str(c.path) for c in train_clips],
        fs,
        ws,
        s.augment,
        s.variants,
        s.train.seed,
        cache_dir,
        females=female_labels(train_clips),
    )
    val_set = extract_windows(
        val_audio, [str(c.path) for c in val_clips], fs, ws, s.augment, 0, s.train.seed, cache_dir
    )
    y_train = female_labels(train_clips)[train_set.clip]
    y_val = female_labels(val_clips)[val_set.clip]
    log.info(
        "training windows: %d (%d clean), validation windows: %d",
        len(y_train),
        int(np.sum(train_set.variant == 0)),
        len(y_val),
    )
    t_feat = time.monotonic()

    model, norm, history = _fit_cached(
        train_set, y_train, val_set.x, y_val, s, steps, cache_dir, [str(c.path) for c in train_clips]
    )
    t_train = time.monotonic()
    tflite = to_int8_tflite(model, norm(train_set.x), seed=s.train.seed)

    summary = summarize(train_clips)
    info = {
        "training_data": {
            "corpora": sorted({c.corpus for c in train_clips}),
            "licences": {Path(spec.split(":", 1)[-1]).name: lic for spec, lic in train_specs},
            "speakers_female": summary.speakers_by_gender["female"],
            "speakers_male": summary.speakers_by_gender["male"],
            "clips": len(train_clips),
            "hours": round(sum(len(a) for a in train_audio) / fs.sample_rate / 3600, 3),
            "augmented_copies": s.variants,
            "rejected_files": train_rejects,
        },
        "settings": jsonable(dataclasses.asdict(s)),
    }
    write_model(out_model, tflite, fs, ws.window_frames, s.infer_hop_frames, norm, s.thresholds, info)
    device_model = load_model(out_model)

    # Evaluation: float Keras and the int8 file through the device runtime, on the same windows.
    cutter = ClipWindows(Frontend(fs), ws.window_frames, s.infer_hop_frames)

    float_scorer = keras_scorer(model, norm)
    eval_sets = {
        "held-out speakers (test split)": eval_clips(test_clips, test_audio),
        **read_eval_sets(eval_specs, cv_tables),
    }
    results: dict[str, Any] = {"sets": {}}
    for name, eclips in eval_sets.items():
        results["sets"][name] = {
            "float": metrics(score_clips(float_scorer, eclips, cutter), s.thresholds),
            "int8": metrics(score_clips(device_model.logits, eclips, cutter), s.thresholds),
        }
        q = results["sets"][name]["int8"]
        log.info(
            "%s: int8 clip balanced accuracy %.3f, windows %.3f, uncertain %.3f",
            name,
            q["clip_balanced_accuracy"],
            q["window_balanced_accuracy"],
            q["uncertain_share"],
        )
    if baseline_npz is not None:
        results["baseline"] = _baseline(eval_sets, baseline_npz, cache_dir, seed=0)
    results["model"] = {
        "file": str(out_model.name),
        "bytes": len(tflite),
        "params": int(model.count_params()),
        "macs": count_macs(model),
        "window_seconds": device_model.metadata.window_seconds,
        "hop_seconds": device_model.metadata.hop_seconds,
        "thresholds": dataclasses.asdict(s.thresholds),
        "runtime": device_model.runtime,
    }
    results["training"] = {
        **info["training_data"],
        "history": history,
        "minutes": {
            "features": round((t_feat - t0) / 60, 2),
            "training": round((t_train - t_feat) / 60, 2),
            "total": round((time.monotonic() - t0) / 60, 2),
        },
    }
    # Metrics go into the metadata too, so a model carries its own numbers.
    meta = json.loads(out_model.with_suffix(".json").read_text())
    meta["metrics"] = {
        name: {
            k: by["int8"][k]
            for k in ("clip_balanced_accuracy", "window_balanced_accuracy", "uncertain_share", "clips")
        }
        | {"float_clip_balanced_accuracy": by["float"]["clip_balanced_accuracy"]}
        for name, by in results["sets"].items()
    }
    out_model.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    split_record = {
        side: sorted({c.speaker or str(c.path) for c in clips_})
        for side, clips_ in (("train", train_clips), ("validation", val_clips), ("test", test_clips))
    }
    Path(report_dir).mkdir(parents=True, exist_ok=True)
    (Path(report_dir) / "split.json").write_text(json.dumps(split_record, indent=1) + "\n")
    report = write_report(results, report_dir)
    model.save(Path(report_dir) / "model.keras")  # the float model, for comparison and fine-tuning
    write_model_card(out_model.parent / "MODEL_CARD.md", results, meta, report)
    log.info("wrote %s, %s in %.1f min", out_model, report, (time.monotonic() - t0) / 60)
    return results


def _fit_cached(
    train_set, y_train, x_val, y_val, s: ShipSettings, steps, cache_dir: Path, clip_ids: list[str]
):
    """Train, or load the model a previous run trained on the same windows with the same settings."""
    import keras

    blob = json.dumps([clip_ids, jsonable(dataclasses.asdict(s)), steps, len(y_train)], sort_keys=True)
    where = Path(cache_dir) / f"model-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"
    if (where / "model.keras").exists():
        log.info("using the model trained earlier with the same data and settings: %s", where)
        with np.load(where / "norm.npz") as z:
            norm = Normaliser(z["mean"], z["std"], bool(z["relative_c0"]))
        history = json.loads((where / "history.json").read_text())
        return keras.saving.load_model(where / "model.keras"), norm, history
    model, norm, history = fit(train_set.x, y_train, x_val, y_val, s.train, s.cnn, steps=steps)
    where.mkdir(parents=True, exist_ok=True)
    model.save(where / "model.keras")
    np.savez(where / "norm.npz", mean=norm.mean, std=norm.std, relative_c0=norm.relative_c0)
    (where / "history.json").write_text(json.dumps(history))
    return model, norm, history


def _baseline(eval_sets: dict[str, list[EvalClip]], npz: Path, cache_dir: Path, seed: int) -> dict[str, Any]:
    """The original system's approach, trained (or loaded from the cache) and scored on our sets."""
    from . import baseline

    where = Path(cache_dir) / "baseline"
    try:
        model, train_metrics = baseline.load_baseline(where)
    except (OSError, ValueError, VoicegenderError):
        model, train_metrics = baseline.train_baseline(npz, seed)
        baseline.save_baseline(model, train_metrics, where)
    scores = {
        "Common Voice, random clip split (as originally reported)": train_metrics["test"]["balanced_accuracy"]
    }
    for name, eclips in eval_sets.items():
        scores[name] = baseline.score_baseline(model, [(c.audio, int(c.female)) for c in eclips])[
            "balanced_accuracy"
        ]
    return {"scores": scores}


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value

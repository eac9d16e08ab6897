"""Reproduce the shipped model from the shared data: read, split, extract, train, export, evaluate,
report and write the model card. ``voicegender-train ship`` runs this."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicegender.errors import VoicegenderError
from voicegender.frontend import FrontendSettings
from voicegender.model import Thresholds, load_model, metadata_path

from .audio_decode import load_batch
from .augment import AugmentSettings
from .cnn import CnnSettings, count_macs
from .codehash import MODEL_CODE, code_digest
from .datasets import GENDERS, Clip, read_any, summarize
from .device_eval import balanced_right, float_twin, headline, score_set
from .evaluate import VOICED_SHARE, EvalClip, metrics, three_way, voiced_share_group
from .export import to_int8_tflite, write_model
from .families import FAMILIES, family_of
from .features import FeatureSet, WindowSettings, cache_path, extract_windows
from .loco import run_loco
from .modelcard import write_model_card
from .paths import REPO
from .peer import INA_VERSION, PeerError, PeerResult, run_ina
from .report import write_report
from .splits import SplitSettings, cap_speakers, split_by_speaker
from .tflog import native_output_to_log
from .train import Normaliser, TrainSettings, fit, total_steps
from .weights import window_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShipSettings:
    """Everything that decides the shipped model."""

    frontend: FrontendSettings = field(default_factory=FrontendSettings)
    """Front-end settings (stored in the model metadata)."""
    windows: WindowSettings = field(default_factory=lambda: WindowSettings(train_hop_frames=50))
    """Window geometry for training (0.5 s between windows: ten times the speakers, not the overlap,
    is what adds information)."""
    infer_hop_frames: int = 25
    """Hop between windows on the device (0.25 s)."""
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    """Augmentation of the training clips."""
    variants: int = 2
    """Augmented copies per training clip, besides the clean one."""
    split: SplitSettings = field(default_factory=lambda: SplitSettings(max_seconds_per_speaker=10.0))
    """Speaker-disjoint split; at most 10 s of audio per speaker, so no speaker or corpus dominates."""
    train: TrainSettings = field(default_factory=lambda: TrainSettings(epochs=5))
    """Optimisation."""
    cnn: CnnSettings = field(default_factory=CnnSettings)
    """Network shape."""
    thresholds: Thresholds = field(default_factory=lambda: Thresholds(0.4, 0.6))
    """The uncertain band written into the metadata: chosen on validation speakers as the narrowest band
    that kept the wrong share of their whole clips where 0.35 / 0.65 had it (1.2%; uncertain 8.9% -> 5.0%)."""
    min_seconds: float = 0.5
    """Clips shorter than this are dropped (with a count)."""
    min_training_age: int = 13
    """Speakers younger than this (where the corpus gives ages) are left out of training, kept in the
    test split: before puberty a boy's voice sounds like a woman's, and training on such voices labelled
    male made adult voices less certain without teaching the model to tell those boys apart."""


# Training corpora may be shipped (their licences allow it). LibriSpeech test-clean samples are held
# out: two of them are the project's test fixtures. EmoDB and eval-only/ are never trained on.
TRAIN_SOURCES = (
    ("librispeech", "LibriSpeech", "CC BY 4.0"),
    ("manifest", "commonvoice/cv61-multilingual", "CC0 1.0"),
    ("manifest", "commonvoice/cv61-english", "CC0 1.0"),
    ("manifest", "commonvoice/cv13-english", "CC0 1.0"),
    ("manifest", "commonvoice/twi-tamil", "CC0 1.0"),
    ("commonvoice", "commonvoice-fa", "CC0 1.0"),
    ("manifest", "speechocean762", "CC BY 4.0"),
    ("manifest", "more-speakers/vctk_samples", "CC BY 4.0"),
    ("manifest", "more-speakers/aishell3_sample", "Apache 2.0"),
    ("manifest", "small-sets/fsdd_digits", "CC BY-SA 4.0"),
    ("manifest", "small-sets/cmu_arctic_samples", "CMU ARCTIC licence (permissive, with attribution)"),
    ("manifest", "small-sets/vctk_p239", "ODC-By"),
    ("manifest", "small-sets/african_phone", "MIT"),
)
# The Persian release is tiny; its unvalidated clips still add voices.
SHIP_CV_TABLES = ("validated", "other")
EVAL_ONLY = {
    "LibriSpeech test-clean (MP3, held out)": ("manifest", "more-speakers/librispeech_testclean_samples"),
    "EmoDB (German, acted)": ("manifest", "emodb"),
    "nEMO (Polish, acted)": ("manifest", "eval-only/nemo-polish"),
    "ASED (Amharic, acted, own devices)": ("manifest", "eval-only/ased-amharic"),
    "BAVED (Arabic single words, own devices)": ("manifest", "eval-only/baved-arabic"),
    "EmotionTTS (Korean, studio, emotional)": ("manifest", "eval-only/emotiontts-korean"),
    "Urdu TV talk shows": ("manifest", "eval-only/urdu-tv"),
    "Deeply Korean (phones at 0.4-4 m)": ("manifest", "eval-only/deeply-korean"),
    "VCC2016 (English, studio)": ("manifest", "eval-only/vcc2016"),
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


AGE_BANDS = ((6, 9, "6-9"), (10, 12, "10-12"), (13, 15, "13-15"), (16, 19, "16-19"), (20, 200, "20+"))
"""Age bands of the report: speechocean762's children are 6-15 (pre-puberty to mid-puberty)."""


def age_years(age: str) -> float | None:
    """A manifest's ``age`` value in years; None where it is blank or not a finite number."""
    try:
        years = float(age)
    except ValueError:
        return None
    return years if math.isfinite(years) else None


def age_band(age: str) -> str | None:
    years = age_years(age)
    if years is None:
        return None
    return next((name for lo, hi, name in AGE_BANDS if lo <= int(years) <= hi), None)


F0_CHECK = "F0 check (qa_f0.csv)"
"""Attribute: the corpus's flag for the speaker's median F0 ("high_for_male", "low_for_female" or
"not flagged")."""


def qa_flags(specs: list[str]) -> dict[str, str]:
    """Speaker id -> F0 flag from the ``qa_f0.csv`` beside each dataset's manifest, where there is one."""
    flags = {}
    for spec in specs:
        folder = Path(spec.split(":", 1)[-1])
        table = (folder if folder.is_dir() else folder.parent) / "qa_f0.csv"
        if table.is_file():
            with table.open(encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    flags[row["speaker_id"]] = (row.get("flag") or "").strip() or "not flagged"
    return flags


def eval_clips(
    clips: list[Clip],
    audio: list[np.ndarray],
    voiced_share: bool = True,
    sample_rate: int = 16000,
    flags: dict[str, str] | None = None,
) -> list[EvalClip]:
    """Evaluation records, each with its corpus's descriptive attributes, its corpus, age band and F0
    flag (``flags``), and (unless ``voiced_share`` is False) its voiced share, for the breakdowns."""
    records = []
    for c, a in zip(clips, audio, strict=True):
        attributes = dict(c.attributes)
        band = age_band(attributes.pop("age", ""))
        attributes["corpus"] = c.corpus
        if flags and c.speaker in flags:
            attributes[F0_CHECK] = flags[c.speaker]
        if band:
            attributes["age band"] = band
        if voiced_share:
            attributes[VOICED_SHARE] = voiced_share_group(a, sample_rate)
        attributes.pop("accent", None)
        records.append(
            EvalClip(
                a,
                c.gender == "female",
                c.speaker or c.path.name,
                c.path.name,
                tuple(sorted(attributes.items())),
                str(c.path),
            )
        )
    return records


CHILD_BANDS = tuple(band for _, oldest, band in AGE_BANDS if oldest < ShipSettings.min_training_age)
"""Age bands of speakers too young for training ("6-9", "10-12"), left out of figures for adults."""


def adult_validation(data: TrainingData) -> list[EvalClip]:
    """The validation clips of ``data`` as evaluation records, without speakers in ``CHILD_BANDS``: the
    held-out speakers that the measurement scripts compare models on."""
    clips = eval_clips(data.val_clips, data.val_audio, voiced_share=False)
    return [c for c in clips if dict(c.attributes).get("age band") not in CHILD_BANDS]


def read_eval_sets(
    eval_specs: dict[str, str], cv_tables: tuple[str, ...], voiced_share: bool = True
) -> dict[str, list[EvalClip]]:
    """Evaluation-only sets by name; clips down to 0.1 s are kept (they are scored, not trained on)."""
    sets = {}
    for name, spec in eval_specs.items():
        kept, audio, _ = load_clips(read_clips(spec, cv_tables), 0.1)
        if not kept:
            raise VoicegenderError(
                f"{spec}: no usable clips to evaluate on (see the skipped-file counts above)"
            )
        sets[name] = eval_clips(kept, audio, voiced_share, flags=qa_flags([spec]))
    return sets


def training_sets(
    clips: list[Clip], audio: list[np.ndarray], source_of: dict[str, tuple[str, str]], sample_rate: int
) -> list[dict[str, Any]]:
    """What each training corpus gave the model (its training-split clips): speakers, clips, hours,
    languages, and where it came from with its licence, for the model card."""
    sets = []
    for corpus in sorted({c.corpus for c in clips}):
        own = [(c, a) for c, a in zip(clips, audio, strict=True) if c.corpus == corpus]
        summary = summarize([c for c, _ in own])
        spec, licence = source_of.get(corpus, ("", "unknown"))
        sets.append(
            {
                "corpus": corpus,
                "source": spec.split(":", 1)[-1],
                "licence": licence,
                "speakers_female": summary.speakers_by_gender["female"],
                "speakers_male": summary.speakers_by_gender["male"],
                "clips": len(own),
                "hours": round(sum(len(a) for _, a in own) / sample_rate / 3600, 3),
                "languages": sorted({dict(c.attributes).get("lang", "") for c, _ in own} - {""}),
            }
        )
    return sets


def too_young(clip: Clip, min_age: int) -> bool:
    """True for a clip whose corpus gives its speaker's age and that age is below ``min_age``."""
    years = age_years(dict(clip.attributes).get("age", ""))
    return years is not None and years < min_age


def drop_clips(
    fset: FeatureSet, clips: list[Clip], audio: list[np.ndarray], drop: np.ndarray
) -> tuple[FeatureSet, list[Clip], list[np.ndarray]]:
    """Windows, clips and audio without the clips marked in ``drop``, window indices renumbered.
    (Windows are extracted, and cached, for the whole split first, so the cache does not depend on
    who is left out.)"""
    keep = ~np.asarray(drop, bool)
    new_index = np.cumsum(keep) - 1
    windows = fset.select(keep[fset.clip])
    windows = FeatureSet(windows.x, new_index[windows.clip].astype(np.int32), windows.variant)
    kept = np.flatnonzero(keep)
    return windows, [clips[i] for i in kept], [audio[i] for i in kept]


def female_labels(clips: list[Clip]) -> np.ndarray:
    return np.array([c.gender == "female" for c in clips])


def speaker_key(clip: Clip) -> str:
    """How ``split.json`` names a clip's speaker (the path for clips without a speaker id)."""
    return clip.speaker or str(clip.path)


def require_evaluable_split(
    train: list[Clip], validation: list[Clip], test: list[Clip], s: SplitSettings
) -> None:
    """Refuse a split whose validation or test side lacks a woman or a man, before anything is written:
    such a model could be neither validated nor tested."""

    def count(clips: list[Clip]) -> dict[str, int]:
        speakers = {(c.gender, speaker_key(c)) for c in clips}
        return {g: sum(gender == g for gender, _ in speakers) for g in GENDERS}

    sides = {"train": count(train), "validation": count(validation), "test": count(test)}
    if all(sides[side][g] for side in sides for g in GENDERS):
        return
    smallest = min(s.validation_fraction, s.test_fraction)
    need = f"at least {math.ceil(0.5 / smallest)}" if smallest > 0 else "more"
    total = {g: sum(sides[side][g] for side in sides) for g in GENDERS}
    counts = ", ".join(f"{side} {n['female']}/{n['male']}" for side, n in sides.items())
    raise VoicegenderError(
        f"too few speakers for a train/validation/test split: {total['female']} female and {total['male']} "
        f"male speakers give (female/male) {counts}; validation and test each need a speaker of each "
        f"gender, i.e. {need} speakers of each gender in one corpus "
        f"(they take {s.validation_fraction:.0%} / {s.test_fraction:.0%} of its smaller gender)"
    )


class Stopwatch:
    """Stage times of one run, for the report's run-time table."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.stages: list[dict[str, Any]] = []

    def lap(self, stage: str, note: str = "") -> None:
        now = time.monotonic()
        self.stages.append({"stage": stage, "minutes": round((now - self.last) / 60, 2), "note": note})
        self.last = now

    def minutes(self) -> float:
        return (time.monotonic() - self.start) / 60

    def record(self) -> list[dict[str, Any]]:
        return [*self.stages, {"stage": "total", "minutes": round(self.minutes(), 2), "note": ""}]


def run(
    data_dir: Path,
    out_model: Path,
    report_dir: Path,
    cache_dir: Path,
    settings: ShipSettings,
    baseline: bool = True,
    verbose: bool = False,
    peer: bool = True,
    loco: bool = True,
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
        baseline_npz=melmean_npz(data_dir) if baseline else None,
        verbose=verbose,
        command="voicegender-train ship",
        loco=loco,
        peer=peer,
    )


def melmean_npz(data_dir: Path) -> Path:
    """The original system's mel-mean features, which its baseline is trained on."""
    return Path(data_dir) / "commonvoice-kaggle-melmean" / "cv_melmean128.npz"


def run_custom(
    train_specs: list[str],
    eval_specs: list[str],
    out_model: Path,
    report_dir: Path,
    cache_dir: Path,
    settings: ShipSettings,
    cv_tables: tuple[str, ...] = ("validated",),
    steps: int | None = None,
    verbose: bool = False,
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
        verbose=verbose,
        command="voicegender-train train",
    )


TEST_SET = "held-out speakers (test split)"


@dataclass(frozen=True)
class TrainingData:
    """A recipe's corpora split by speaker and decoded, with the training and validation windows."""

    train_clips: list[Clip]
    """Training clips (without the speakers ``ShipSettings.min_training_age`` leaves out)."""
    train_audio: list[np.ndarray]
    """Their 16 kHz audio."""
    train_rejects: dict[str, int]
    """Training files that could not be used, by reason."""
    val_clips: list[Clip]
    """Validation clips (speakers of the training corpora, never trained on)."""
    val_audio: list[np.ndarray]
    """Their audio."""
    test_clips: list[Clip]
    """Test-split clips."""
    test_audio: list[np.ndarray]
    """Their audio."""
    split_clips: list[Clip]
    """Every usable clip of the split, including the speakers left out of training."""
    split_audio: list[np.ndarray]
    """Their audio."""
    source_of: dict[str, tuple[str, str]]
    """Corpus name -> (dataset spec, licence)."""
    train_set: FeatureSet
    """Training windows (clean and augmented)."""
    y_train: np.ndarray
    """1 where a training window's speaker is female."""
    val_set: FeatureSet
    """Validation windows (clean)."""
    y_val: np.ndarray
    """1 where a validation window's speaker is female."""


def prepare_training_data(
    train_specs: list[tuple[str, str]],
    cv_tables: tuple[str, ...],
    s: ShipSettings,
    cache_dir: Path | None,
    clock: Stopwatch | None = None,
) -> TrainingData:
    """Read ``train_specs`` ((spec, licence) pairs), split by speaker, decode, leave out the youngest
    speakers from training, and cut the training and validation windows (cached in ``cache_dir``)."""
    clock = clock or Stopwatch()
    clips: list[Clip] = []
    source_of: dict[str, tuple[str, str]] = {}
    for spec, licence in train_specs:
        read = read_clips(spec, cv_tables)
        source_of |= {c.corpus: (spec, licence) for c in read}
        clips += read
    split = split_by_speaker(clips, s.split)
    for warning in split.warnings:
        log.warning("%s", warning)
    require_evaluable_split(list(split.train), list(split.validation), list(split.test), s.split)
    train_clips, train_audio, train_rejects = load_clips(list(split.train), s.min_seconds)
    val_clips, val_audio, _ = load_clips(list(split.validation), s.min_seconds)
    test_clips, test_audio, _ = load_clips(list(split.test), s.min_seconds)
    require_evaluable_split(train_clips, val_clips, test_clips, s.split)  # after unusable files are dropped
    log.info("train %d clips, validation %d, test %d", len(train_clips), len(val_clips), len(test_clips))
    clock.lap("read and decode audio")

    fs, ws = s.frontend, s.windows
    ids, females = [str(c.path) for c in train_clips], female_labels(train_clips)
    cached = cache_path(cache_dir, ids, fs, ws, s.augment, s.variants, s.train.seed, females)
    cached = cached is not None and cached.exists()
    train_set = extract_windows(
        train_audio, ids, fs, ws, s.augment, s.variants, s.train.seed, cache_dir, females=females
    )
    val_set = extract_windows(
        val_audio, [str(c.path) for c in val_clips], fs, ws, s.augment, 0, s.train.seed, cache_dir
    )
    split_clips, split_audio = train_clips + val_clips + test_clips, train_audio + val_audio + test_audio
    young = np.array([too_young(c, s.min_training_age) for c in train_clips], bool)
    if young.any():
        log.info("left out of training: %d clips of speakers under %d", young.sum(), s.min_training_age)
        train_set, train_clips, train_audio = drop_clips(train_set, train_clips, train_audio, young)
    y_train = female_labels(train_clips)[train_set.clip]
    y_val = female_labels(val_clips)[val_set.clip]
    log.info(
        "training windows: %d (%d clean), validation windows: %d",
        len(y_train),
        int(np.sum(train_set.variant == 0)),
        len(y_val),
    )
    clock.lap("training windows (augmentation, front end)", "from the cache" if cached else "")
    return TrainingData(
        train_clips,
        train_audio,
        train_rejects,
        val_clips,
        val_audio,
        test_clips,
        test_audio,
        split_clips,
        split_audio,
        source_of,
        train_set,
        y_train,
        val_set,
        y_val,
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
    verbose: bool = False,
    command: str = "voicegender-train",
    loco: bool = False,
    peer: bool = False,
) -> dict[str, Any]:
    """Read, split by speaker, extract, train, export int8, evaluate float and int8 (and with ``loco``
    leave-one-corpus-out), report. Every check on the data (empty split sides, unusable evaluation
    sets) comes before anything is written."""
    clock = Stopwatch()
    s = settings
    out_model = Path(out_model)
    eval_only = read_eval_sets(eval_specs, cv_tables)
    data = prepare_training_data(train_specs, cv_tables, s, cache_dir, clock)
    train_clips, train_set, y_train = data.train_clips, data.train_set, data.y_train
    flags = qa_flags([spec for spec, _ in train_specs])
    eval_sets = {TEST_SET: eval_clips(data.test_clips, data.test_audio, flags=flags), **eval_only}
    ids = [str(c.path) for c in train_clips]
    fs, ws = s.frontend, s.windows

    weights = window_weights(train_clips, train_set.clip)
    model, norm, history, model_cached = _fit_cached(
        train_set, y_train, data.val_set.x, data.y_val, weights, s, steps, cache_dir, ids
    )
    clock.lap("training", "the model trained earlier with the same data and settings" if model_cached else "")
    with native_output_to_log(not verbose):
        tflite = to_int8_tflite(model, norm(train_set.x), seed=s.train.seed)

    summary = summarize(train_clips)
    info = {
        "training_data": {
            "corpora": sorted({c.corpus for c in train_clips}),
            "licences": {Path(spec.split(":", 1)[-1]).name: lic for spec, lic in train_specs},
            "sets": training_sets(train_clips, data.train_audio, data.source_of, fs.sample_rate),
            "speakers_female": summary.speakers_by_gender["female"],
            "speakers_male": summary.speakers_by_gender["male"],
            "clips": len(train_clips),
            "hours": round(sum(len(a) for a in data.train_audio) / fs.sample_rate / 3600, 3),
            "augmented_copies": s.variants,
            "rejected_files": data.train_rejects,
        },
        "settings": jsonable(dataclasses.asdict(s)),
    }
    write_model(out_model, tflite, fs, ws.window_frames, s.infer_hop_frames, norm, s.thresholds, info)
    split_record = {
        side: sorted({speaker_key(c) for c in clips_})
        for side, clips_ in (
            ("train", train_clips),
            ("validation", data.val_clips),
            ("test", data.test_clips),
        )
    }
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "split.json").write_text(json.dumps(split_record, indent=1) + "\n")
    model.save(report_dir / "model.keras")  # the float model, for comparison and fine-tuning
    clock.lap("int8 export")

    with native_output_to_log(not verbose):
        device_model = load_model(out_model)
    meta = json.loads(out_model.with_suffix(".json").read_text())
    extra = {}
    if loco:

        def write(family: str, tflite: bytes, norm_: Normaliser):
            path = report_dir / "loco" / (re.sub(r"[^a-z0-9]+", "-", family.lower()).strip("-") + ".tflite")
            write_model(path, tflite, fs, ws.window_frames, s.infer_hop_frames, norm_, s.thresholds, {})
            with native_output_to_log(not verbose):
                return load_model(path)

        everyone = eval_clips(
            data.split_clips,  # the young speakers the model did not train on are tested too
            data.split_audio,
            voiced_share=False,
            flags=flags,
        )
        held_out = {
            f: [c for c in everyone if family_of(dict(c.attributes)["corpus"]) == f] for f in FAMILIES
        }
        samples = {
            f: [c for c in eval_sets[TEST_SET] if family_of(dict(c.attributes)["corpus"]) == f]
            for f in FAMILIES
        }

        def peer_on(sample: list[EvalClip]) -> dict[str, Any] | None:
            found = run_peer({"sample": sample}, Path(cache_dir)) if peer else None
            return peer_figures(sample, found) if isinstance(found, dict) else None

        extra["loco"] = run_loco(
            train_clips,
            train_set,
            y_train,
            data.val_clips,
            data.val_set,
            data.y_val,
            held_out,
            samples,
            s,
            write,
            Path(cache_dir),
            peer_on,
            total_steps(len(y_train), s.train, steps),
        )
        clock.lap("leave-one-corpus-out", f"{len(FAMILIES)} models, each tested on all of its family")
    results = evaluate_and_write(
        device_model,
        model,
        norm,
        eval_sets,
        meta,
        report_dir,
        out_model.parent / "MODEL_CARD.md",
        {**info["training_data"], "history": history},
        clock,
        command,
        baseline_npz,
        cache_dir,
        peer=peer,
        extra=extra,
    )
    # Metrics go into the metadata too, so a model carries its own numbers.
    meta["metrics"] = {name: metadata_metrics(by) for name, by in results["sets"].items()}
    out_model.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return results


def metadata_metrics(by_model: dict[str, Any]) -> dict[str, Any]:
    """The figures a model's metadata carries for one evaluation set (shares in 0..1)."""
    q, f = by_model["int8"]["headline"], by_model["float"]["headline"]
    return {
        "clips": q["n"],
        "thresholds": by_model["int8"]["thresholds"],
        "right": q["right"],
        "uncertain": q["uncertain"],
        "wrong": q["wrong"],
        "balanced_accuracy_p50": q["balanced_accuracy_p50"],
        "float_balanced_accuracy_p50": f["balanced_accuracy_p50"],
        **(
            {"peer_balanced_accuracy_p50": by_model["peer"]["balanced_accuracy_p50"]}
            if "peer" in by_model
            else {}
        ),
    }


def evaluate_and_write(
    device_model,
    keras_model,
    norm: Normaliser,
    eval_sets: dict[str, list[EvalClip]],
    meta: dict[str, Any],
    report_dir: Path,
    card: Path,
    training: dict[str, Any],
    clock: Stopwatch,
    command: str,
    baseline_npz: Path | None = None,
    cache_dir: Path | None = None,
    peer: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score the int8 file and its float twin through the device's own pipeline on every set (each
    clip whole and cut after 0.3-3 s of speech), the peer on the same files; write metrics.json,
    REPORT.md with its plots, and the model card. ``extra`` (e.g. leave-one-corpus-out) is added to
    the results as it is."""
    md = device_model.metadata
    report_dir = Path(report_dir)
    # The float twin is a working file, not part of the report.
    float_path = Path(cache_dir or "cache") / "float-twin" / "voicegender-float.tflite"
    float_model = float_twin(keras_model, device_model, float_path)
    peer_results = run_peer(eval_sets, Path(cache_dir or "cache")) if peer else None
    if peer:
        clock.lap("peer (inaSpeechSegmenter)", "from its cache where it has the files")
    results: dict[str, Any] = {"command": command, "sets": {}}
    for name, eclips in eval_sets.items():
        entry = {}
        for which, model in (("float", float_model), ("int8", device_model)):
            scores, verdicts, cpu = score_set(model, eclips)
            entry[which] = metrics(scores, md.thresholds)
            entry[which]["headline"] = headline(verdicts, scores.y, model) | {"cpu_per_audio_second": cpu}
        if isinstance(peer_results, dict):
            entry["peer"] = peer_figures(eclips, peer_results)
        results["sets"][name] = entry
        q = entry["int8"]["headline"]
        log.info(
            "%s: right %.3f, uncertain %.3f, wrong %.3f; balanced accuracy %.3f%s",
            name,
            q["right"],
            q["uncertain"],
            q["wrong"],
            q["balanced_accuracy_p50"],
            f" (peer {entry['peer']['balanced_accuracy_p50']:.3f})" if "peer" in entry else "",
        )
        clock.lap(f"evaluation: {name}", f"{len(eclips)} clips, float and int8")
    if isinstance(peer_results, str):
        results["peer_error"] = peer_results
    if baseline_npz is not None:
        results["baseline"] = _baseline(eval_sets, baseline_npz, Path(cache_dir or "cache"), seed=0)
        clock.lap("original-system baseline", "train or load from the cache, score every set")
    results["model"] = {
        "file": device_model.path.name,
        "sha256": meta.get("model_sha256"),
        "bytes": meta.get("model_bytes"),
        "params": int(keras_model.count_params()),
        "macs": count_macs(keras_model),
        "window_seconds": md.window_seconds,
        "hop_seconds": md.hop_seconds,
        "thresholds": dataclasses.asdict(md.thresholds),
        "runtime": device_model.runtime,
    }
    results["training"] = training
    results |= extra or {}
    results["timings"] = clock.record()
    report = write_report(results, report_dir)
    write_model_card(card, results, meta, report)
    log.info("wrote %s and %s in %.1f min", report, card, clock.minutes())
    return results


INA_VENV = REPO / ".venv-ina"
"""Where the peer's own virtual environment is made on first use."""


def run_peer(eval_sets: dict[str, list[EvalClip]], cache_dir: Path) -> dict[str, PeerResult] | str:
    """inaSpeechSegmenter's result per file of every set, or why it could not run (the report says so)."""
    paths = [Path(c.path) for eclips in eval_sets.values() for c in eclips if c.path]
    try:
        found = run_ina(paths, INA_VENV, Path(cache_dir) / "peer" / f"ina-{INA_VERSION}.jsonl")
    except PeerError as exc:
        log.warning("%s", exc)
        return str(exc)
    return {str(p): r for p, r in found.items()}


def peer_figures(eclips: list[EvalClip], found: dict[str, PeerResult]) -> dict[str, Any]:
    """The peer's figures on the clips it processed, counted as ours are ("undecided" = uncertain)."""
    pairs = [(c, found[c.path]) for c in eclips if c.path in found]
    labels = np.array(["uncertain" if r.label == "undecided" else r.label for _, r in pairs], dtype=object)
    female = np.array([c.female for c, _ in pairs], dtype=bool)
    seconds = sum(len(c.audio) for c, _ in pairs) / 16000
    balanced = balanced_right(labels, female)  # the peer has no band: both figures are this one
    return {
        **three_way(labels, female),
        "balanced_right": balanced,
        "balanced_accuracy_p50": balanced,
        "band_by_gender": {
            g: three_way(labels[female == (g == "female")], female[female == (g == "female")])
            for g in GENDERS
            if np.any(female == (g == "female"))
        },
        "errors": sum(r.error is not None for _, r in pairs),
        "cpu_per_audio_second": sum(r.cpu_seconds for _, r in pairs) / seconds if seconds else None,
    }


def evaluate_existing(
    model_path: Path,
    report_dir: Path,
    card: Path,
    cache_dir: Path,
    train_specs: list[str],
    eval_specs: dict[str, str],
    cv_tables: tuple[str, ...],
    baseline_npz: Path | None = None,
    verbose: bool = False,
    command: str = "voicegender-train evaluate",
    peer: bool = True,
) -> dict[str, Any]:
    """Score an existing model (the int8 file and the float ``model.keras`` beside its report) on the
    test speakers ``split.json`` records and on the evaluation-only sets; rewrite the report and the
    model card. The model and its metadata are read, never written."""
    import keras

    clock = Stopwatch()
    model_path, report_dir = Path(model_path), Path(report_dir)
    with native_output_to_log(not verbose):
        device_model = load_model(model_path)
    meta = json.loads(metadata_path(model_path).read_text())
    keras_path, split_path = report_dir / "model.keras", report_dir / "split.json"
    for path, what in ((keras_path, "the float model"), (split_path, "the record of the speaker split")):
        if not path.is_file():
            raise VoicegenderError(f"{path}: {what} is missing (ship and train write it beside the report)")
    try:
        record = json.loads(split_path.read_text())
        test_speakers, train_speakers = set(record["test"]), set(record["train"])
    except (ValueError, KeyError, TypeError) as exc:
        raise VoicegenderError(f"{split_path}: not a speaker-split record ({exc})") from exc
    if test_speakers & train_speakers:
        raise VoicegenderError(
            f"{split_path}: {len(test_speakers & train_speakers)} speakers are in train and test"
        )
    keras_model = keras.saving.load_model(keras_path)
    md = device_model.metadata
    norm = Normaliser(
        np.asarray(md.feature_mean, np.float32), np.asarray(md.feature_std, np.float32), md.relative_c0
    )
    clips = [c for spec in train_specs for c in read_clips(spec, cv_tables)]
    test = [c for c in clips if speaker_key(c) in test_speakers]
    missing = test_speakers - {speaker_key(c) for c in test}
    if missing:
        raise VoicegenderError(
            f"{split_path}: {len(missing)} of its {len(test_speakers)} test speakers are not in the training "
            f"data given (e.g. {sorted(missing)[0]}); evaluate reads the corpora the model was trained from"
        )
    settings = meta.get("settings", {})
    split = settings.get("split", {})
    # The same per-speaker caps the split applied, so the test clips are the ones training set aside.
    test = cap_speakers(
        test, split.get("max_clips_per_speaker"), split.get("max_seconds_per_speaker"), split.get("seed", 0)
    )
    min_seconds = float(settings.get("min_seconds", ShipSettings.min_seconds))
    kept, audio, _ = load_clips(test, min_seconds)
    flags = qa_flags(train_specs)
    eval_sets = {TEST_SET: eval_clips(kept, audio, flags=flags), **read_eval_sets(eval_specs, cv_tables)}
    clock.lap("read and decode audio")
    return evaluate_and_write(
        device_model,
        keras_model,
        norm,
        eval_sets,
        meta,
        report_dir,
        card,
        training_record(meta, report_dir / "metrics.json"),
        clock,
        command,
        baseline_npz,
        cache_dir,
        peer=peer,
    )


def training_record(meta: dict[str, Any], previous_metrics: Path) -> dict[str, Any]:
    """The training summary from the metadata, with the per-epoch history the previous report recorded
    when that report is about the same model file."""
    record = dict(meta.get("training_data", {}))
    try:
        old = json.loads(Path(previous_metrics).read_text())
    except (OSError, ValueError):
        return record
    old_model, old_training = old.get("model", {}), old.get("training", {})
    if old_model.get("sha256"):
        same = old_model["sha256"] == meta.get("model_sha256")
    else:  # reports from before the sha256 was recorded
        same = (old_model.get("bytes"), old_training.get("clips")) == (
            meta.get("model_bytes"),
            record.get("clips"),
        )
    if same and old_training.get("history"):
        record["history"] = old_training["history"]
    return record


def _fit_cached(
    train_set, y_train, x_val, y_val, weights, s: ShipSettings, steps, cache_dir: Path, clip_ids: list[str]
):
    """Train, or load the model a previous run trained on the same windows, settings and code."""
    import keras

    blob = json.dumps(
        [clip_ids, jsonable(dataclasses.asdict(s)), steps, len(y_train), code_digest(MODEL_CODE)],
        sort_keys=True,
    )
    where = Path(cache_dir) / f"model-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"
    if (where / "model.keras").exists():
        log.info("using the model trained earlier with the same data and settings: %s", where)
        with np.load(where / "norm.npz") as z:
            norm = Normaliser(z["mean"], z["std"], bool(z["relative_c0"]))
        history = json.loads((where / "history.json").read_text())
        return keras.saving.load_model(where / "model.keras"), norm, history, True
    started = time.monotonic()
    model, norm, history = fit(
        train_set.x, y_train, x_val, y_val, s.train, s.cnn, steps=steps, sample_weight=weights
    )
    history["minutes"] = round((time.monotonic() - started) / 60, 2)
    where.mkdir(parents=True, exist_ok=True)
    model.save(where / "model.keras")
    np.savez(where / "norm.npz", mean=norm.mean, std=norm.std, relative_c0=norm.relative_c0)
    (where / "history.json").write_text(json.dumps(history))
    return model, norm, history, False


BASELINE_VARIANTS = {
    "dB, standardised": True,
    "raw power (the original code)": False,
}
"""Column name -> ``BaselineSettings.log_scale`` of the two baseline inputs the report shows."""
BASELINE_OWN_SPLIT = "Common Voice, random clip split (as originally reported)"


def _baseline(eval_sets: dict[str, list[EvalClip]], npz: Path, cache_dir: Path, seed: int) -> dict[str, Any]:
    """The original system's approach with both inputs, trained (or loaded from the cache) and scored
    on our sets: balanced accuracy at p = 0.5."""
    from . import baseline

    features = {
        name: np.stack([baseline.melmean_features(c.audio) for c in eclips])
        for name, eclips in eval_sets.items()
    }
    variants = {}
    for label, log_scale in BASELINE_VARIANTS.items():
        where = Path(cache_dir) / ("baseline" if log_scale else "baseline-raw")
        try:
            model, train_metrics = baseline.load_baseline(where)
            if (train_metrics["settings"]["log_scale"], train_metrics["seed"]) != (log_scale, seed):
                raise ValueError("cached for other settings")
        except (OSError, ValueError, KeyError, VoicegenderError):
            model, train_metrics = baseline.train_baseline(
                npz, seed, baseline.BaselineSettings(log_scale=log_scale)
            )
            baseline.save_baseline(model, train_metrics, where)
        scores = {BASELINE_OWN_SPLIT: train_metrics["test"]["balanced_accuracy"]}
        for name, eclips in eval_sets.items():
            p_male = model.predict(features[name], batch_size=1024, verbose=0).reshape(-1)
            female = np.array([c.female for c in eclips])
            scores[name] = baseline.classification_metrics(female, p_male < 0.5)["balanced_accuracy"]
        variants[label] = scores
    return {"variants": variants}


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value

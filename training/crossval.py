"""Speaker k-fold cross-validation of the training recipe: every training speaker is held out once, so
the held-out estimate rests on all of them instead of one small test split, and scoring each fold's
model on the evaluation-only sets shows how far the numbers move with the choice of training speakers.
``voicegender-train crossval`` runs this."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from voicegender.errors import VoicegenderError
from voicegender.frontend import Frontend

from .evaluate import ClipScores, ClipWindows, metrics, score_clips
from .features import extract_windows
from .report import pct, ruw
from .ship import ShipSettings, eval_clips, female_labels, jsonable, load_clips, read_clips, read_eval_sets
from .splits import kfold_splits
from .train import fit, keras_scorer

log = logging.getLogger(__name__)


def run(
    train_specs: list[str],
    eval_specs: dict[str, str],
    k: int,
    report_dir: Path,
    cache_dir: Path,
    settings: ShipSettings,
    cv_tables: tuple[str, ...] = ("validated",),
    steps: int | None = None,
) -> dict[str, Any]:
    """Train ``k`` float models (fold i tests, fold i+1 validates, the rest trains) and write
    ``crossval.md`` and ``crossval.json`` to ``report_dir``."""
    t0 = time.monotonic()
    s = settings
    clips = [c for spec in train_specs for c in read_clips(spec, cv_tables)]
    splits = kfold_splits(clips, k, s.split)
    if any(not split.test for split in splits):
        n = len({c.speaker or c.path for c in clips})
        raise VoicegenderError(f"crossval: {n} speakers cannot fill {k} folds (use a smaller --k)")
    for warning in splits[0].warnings:
        log.warning("%s", warning)
    used = {c.path: c for split in splits for c in (*split.train, *split.validation, *split.test)}
    kept, audio, _ = load_clips(list(used.values()), s.min_seconds)
    if not kept:
        raise VoicegenderError("no usable training clips (see the skipped-file counts above)")
    index = {c.path: i for i, c in enumerate(kept)}
    females = female_labels(kept)
    # One extraction for all clips (augmented copies included); each fold selects its clips from it.
    windows = extract_windows(
        audio,
        [str(c.path) for c in kept],
        s.frontend,
        s.windows,
        s.augment,
        s.variants,
        s.train.seed,
        cache_dir,
        females=females,
    )
    y = females[windows.clip]
    cutter = ClipWindows(Frontend(s.frontend), s.windows.window_frames, s.infer_hop_frames)
    eval_sets = read_eval_sets(eval_specs, cv_tables, voiced_share=False)  # crossval reports no breakdowns

    def members(side: tuple) -> np.ndarray:
        return np.array(sorted(index[c.path] for c in side if c.path in index), dtype=np.int64)

    folds, held_out = [], []
    for i, split in enumerate(splits):
        train, val, test = members(split.train), members(split.validation), members(split.test)
        tr = np.isin(windows.clip, train)
        va = np.isin(windows.clip, val) & (windows.variant == 0)
        log.info(
            "fold %d/%d: train %d clips, validation %d, test %d", i + 1, k, len(train), len(val), len(test)
        )
        model, norm, _ = fit(windows.x[tr], y[tr], windows.x[va], y[va], s.train, s.cnn, steps=steps)
        scorer = keras_scorer(model, norm)
        test_clips = eval_clips([kept[j] for j in test], [audio[j] for j in test], voiced_share=False)
        test_scores = score_clips(scorer, test_clips, cutter, durations=())
        held_out.append((test, test_scores))
        fold = {
            "train_clips": len(train),
            "test_speakers": sorted({kept[j].speaker or kept[j].path.name for j in test}),
            "test": _summary(metrics(test_scores, s.thresholds)),
            "sets": {
                name: _summary(metrics(score_clips(scorer, eclips, cutter, durations=()), s.thresholds))
                for name, eclips in eval_sets.items()
            },
        }
        folds.append(fold)
        sets = ", ".join(f"{n} {m['clip_balanced_accuracy']:.3f}" for n, m in fold["sets"].items())
        log.info("fold %d: held-out clips %.3f; %s", i + 1, fold["test"]["clip_balanced_accuracy"], sets)

    # Every clip was tested once: pool the held-out scores, per corpus and over all.
    pooled_clips = [c for _, sc in held_out for c in sc.clips]
    pooled_logits = [w for _, sc in held_out for w in sc.window_logits]
    corpus = np.array([kept[j].corpus for idx, _ in held_out for j in idx])
    pooled = {}
    for name in ["all", *sorted(set(corpus))]:
        sel = np.ones(len(corpus), bool) if name == "all" else corpus == name
        scores = ClipScores(
            [c for c, m in zip(pooled_clips, sel, strict=True) if m],
            [w for w, m in zip(pooled_logits, sel, strict=True) if m],
        )
        pooled[name] = _summary(metrics(scores, s.thresholds), worst=True)
    result = {
        "k": k,
        "settings": jsonable(dataclasses.asdict(s)),  # the model card uses it only for the same recipe
        "folds": folds,
        "pooled_held_out": pooled,
        "sets": {
            name: {
                key: _spread([f["sets"][name][key] for f in folds])
                for key in ("clip_balanced_accuracy", "window_balanced_accuracy", "uncertain_share")
            }
            | {key: _spread([f["sets"][name]["band"][key] for f in folds]) for key in ("right", "wrong")}
            for name in eval_sets
        },
        "minutes": round((time.monotonic() - t0) / 60, 2),
    }
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "crossval.json").write_text(json.dumps(result, indent=1) + "\n")
    (report_dir / "crossval.md").write_text(_markdown(result, s))
    log.info("wrote %s in %.1f min", report_dir / "crossval.md", result["minutes"])
    return result


def _summary(m: dict[str, Any], worst: bool = False) -> dict[str, Any]:
    keys = [
        "clips",
        "speakers_female",
        "speakers_male",
        "clip_balanced_accuracy",
        "window_balanced_accuracy",
        "uncertain_share",
    ]
    out = {key: m[key] for key in keys} | {"band": m["band"]}
    if worst:
        out["wrong_speakers"] = [spk for spk, v in m["per_speaker"].items() if v["accuracy"] < 0.5]
    return out


def _spread(values: list[float]) -> dict[str, float]:
    v = np.array(values, dtype=float)
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
    }


def _markdown(r: dict[str, Any], s: ShipSettings) -> str:
    lines = [
        f"# Cross-validation: {r['k']} speaker-disjoint folds",
        "",
        "Fold i is the test set, fold i+1 validates, the rest trains; the training recipe is the shipped "
        f"model's (augmented copies per clip: {s.variants}, {s.train.epochs} epochs, seed {s.train.seed}). "
        "Float Keras models (the shipped report shows int8 within half a point of float). "
        f"{r['minutes']:.1f} min on this machine.",
        "",
        f"Right / uncertain / wrong: shares of clips decided right, uncertain or wrong at the shipped band "
        f"(male if p_female <= {s.thresholds.male_below:g}, female if >= {s.thresholds.female_above:g}). "
        "Balanced accuracy: the mean of the share of women called female and of men called male when "
        "every clip (or 1 s window) is forced to a side at p = 0.5. Speakers on the wrong side: most of "
        "their clips on the wrong side of p = 0.5.",
        "",
        "## Every training speaker held out once",
        "",
        "| corpus | clips | speakers F/M | right / uncertain / wrong | clips, balanced accuracy "
        "| 1 s windows, balanced accuracy | speakers on the wrong side |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in r["pooled_held_out"].items():
        lines.append(
            f"| {name} | {m['clips']} | {m['speakers_female']}/{m['speakers_male']} | "
            f"{ruw(m.get('band')) if m.get('band') else '– / ' + pct(m['uncertain_share']) + ' / –'} | "
            f"{pct(m['clip_balanced_accuracy'])} | {pct(m['window_balanced_accuracy'])} | "
            f"{', '.join(m['wrong_speakers']) or 'none'} |"
        )
    lines += [
        "",
        "## Evaluation-only sets, one score per fold's model",
        "",
        "| set | right | uncertain | wrong | clips, balanced accuracy: mean ± sd [min, max] "
        "| 1 s windows, balanced accuracy |",
        "|---|---|---|---|---|---|",
    ]

    def mean_sd(v: dict[str, float] | None) -> str:
        return "–" if v is None else f"{pct(v['mean'])} ± {100 * v['sd']:.1f}"

    for name, by in r["sets"].items():
        c = by["clip_balanced_accuracy"]
        lines.append(
            f"| {name} | {mean_sd(by.get('right'))} | {mean_sd(by['uncertain_share'])} | "
            f"{mean_sd(by.get('wrong'))} | {mean_sd(c)} [{pct(c['min'])}, {pct(c['max'])}] | "
            f"{mean_sd(by['window_balanced_accuracy'])} |"
        )
    lines += [
        "",
        "## Per fold",
        "",
        "Balanced accuracy of clips at p = 0.5:",
        "",
        "| fold | training clips | test speakers | held-out clips | " + " | ".join(r["sets"]) + " |",
        "|---|---|---|---|" + "---|" * len(r["sets"]),
    ]
    for i, f in enumerate(r["folds"], 1):
        sets = " | ".join(pct(m["clip_balanced_accuracy"]) for m in f["sets"].values())
        lines.append(
            f"| {i} | {f['train_clips']} | {len(f['test_speakers'])} | "
            f"{pct(f['test']['clip_balanced_accuracy'])} | {sets} |"
        )
    return "\n".join(lines) + "\n"

#!/usr/bin/env python3
"""Would another recipe or an ensemble do better? The shipped recipe (``voicegender-train ship``) trained
again with one thing changed, and ensembles of two networks, each scored through the device pipeline on
the validation speakers of the training corpora and on every evaluation-only set, whole clips and cut
after their first 0.3, 0.5 and 1 s of speech.

    .venv/bin/python scripts/recipe_check.py [--out models/report/recipe_check.md]

Variants: the recipe as it is; without its short-speech windows (``WindowSettings.p_short`` 0); men's
F0 raised by up to 14 semitones in augmentation instead of 8; the F0 change in every augmented copy
instead of half of them; the first 20 cepstral coefficients only (``FrontendSettings.n_mfcc`` 20: the
same windows without the fine spectral detail that carries pitch harmonics); a second training seed
(its own augmented windows); twice its gradient steps; trained on
clean read speech only (LibriSpeech and the rest: the families the shipped v2 came from) or without
Common Voice. An ensemble averages two networks' log-odds per window, which is exactly what averaging
their pooled log-odds per clip gives (the device pools windows by their mean log-odds, and the windows
depend on the voice detector only); the shipped model (``models/voicegender.tflite``) is one of the
members. Models are cached in the cache directory (keyed on their windows, settings and the training
code).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from voicegender.model import Model, Thresholds, load_model, sigmoid
from voicegender_training import ship
from voicegender_training.device_eval import balanced_right, score_set
from voicegender_training.evaluate import EvalClip, decide, three_way
from voicegender_training.paths import REPO, SHARED_DATA
from voicegender_training.report import MIN_TABLE_CLIPS
from voicegender_training.train import total_steps
from voicegender_training.variant import device_model, train_variant
from voicegender_training.weights import family_key

LENGTHS = (0.3, 0.5, 1.0)
"""Seconds of speech after which each clip is also decided."""
CLEAN = ("LibriSpeech", "the rest (VCTK, AISHELL-3, FSDD, CMU ARCTIC, Yoruba phone)")
VALIDATION = "validation (adults)"
FEW_COEFFICIENTS = 20
"""Cepstral coefficients kept by the ``first 20 cepstral coefficients`` variant."""
ENSEMBLES = (
    ("recipe", "shipped v2"),
    ("recipe", "first 20 cepstral coefficients only"),
    ("recipe", "second training seed"),
    ("recipe", "clean read speech only"),
    ("recipe", "without Common Voice"),
)


def logits_of(model: Model, sets: dict[str, list[EvalClip]]) -> dict[str, dict[str, list[float]]]:
    """{set: {"whole" or a speech length: per-clip pooled log-odds}}: 0 where there was no decision
    (as ``score_set`` gives the cuts), NaN where a clip never reaches the length."""
    out = {}
    for name, clips in sets.items():
        scores, verdicts, _ = score_set(model, clips, lengths=LENGTHS)
        per = {"whole": [0.0 if math.isnan(v.logit) else v.logit for v in verdicts]}
        per |= {str(length): [float(v) for v in values] for length, values in scores.by_duration.items()}
        out[name] = per
    return out


def first_coefficients(
    data: ship.TrainingData, s: ship.ShipSettings, k: int
) -> tuple[ship.TrainingData, ship.ShipSettings]:
    """``data`` and ``s`` for a model on the first ``k`` cepstral coefficients: the DCT is orthonormal,
    so the front end with ``n_mfcc=k`` gives exactly these leading columns of the cached windows."""

    def keep(windows):
        return dataclasses.replace(windows, x=np.ascontiguousarray(windows.x[..., :k]))

    fewer = dataclasses.replace(data, train_set=keep(data.train_set), val_set=keep(data.val_set))
    return fewer, dataclasses.replace(s, frontend=dataclasses.replace(s.frontend, n_mfcc=k))


def figures(logits: np.ndarray, female: np.ndarray, band: Thresholds) -> dict[str, float]:
    """Balanced accuracy at p = 0.5 and right / uncertain / wrong at ``band`` over the clips that reach
    the length; a clip without a decision counts as uncertain, and as not right."""
    reach = ~np.isnan(logits)
    if not reach.any():
        return {"balanced": math.nan, "right": math.nan, "uncertain": math.nan, "wrong": math.nan, "clips": 0}
    logits, female = logits[reach], female[reach]
    decided = logits != 0.0
    p50 = np.where(decided, np.where(logits > 0, "female", "male"), "uncertain")
    labels = decide(sigmoid(logits), band)
    labels[~decided] = "uncertain"
    shares = three_way(labels, female)
    return {
        "balanced": balanced_right(p50, female),
        **{k: shares[k] for k in ("right", "uncertain", "wrong")},
        "clips": int(reach.sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write the table (markdown) and its figures (.json) here too")
    ap.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    ap.add_argument("--cache-dir", type=Path, default=REPO / "cache")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    s = ship.ShipSettings()
    specs, eval_specs = ship.shipped_specs(args.data_dir)
    sets = {
        name: clips
        for name, clips in ship.read_eval_sets(eval_specs, ship.SHIP_CV_TABLES, voiced_share=False).items()
        if len(clips) >= MIN_TABLE_CLIPS
    }
    data = ship.prepare_training_data(specs, ship.SHIP_CV_TABLES, s, args.cache_dir)
    sets = {VALIDATION: ship.adult_validation(data), **sets}
    steps = total_steps(len(data.y_train), s.train)
    family = np.array([family_key(c) for c in data.train_clips])
    everyone = np.ones(len(family), bool)
    runs = {
        "recipe": (data, s, everyone, steps),
        "twice the steps": (data, s, everyone, 2 * steps),
        "clean read speech only": (data, s, np.isin(family, CLEAN), steps),
        "without Common Voice": (data, s, family != "Common Voice", steps),
        "first 20 cepstral coefficients only": (
            *first_coefficients(data, s, FEW_COEFFICIENTS),
            everyone,
            steps,
        ),
    }
    shipped = load_model(REPO / "models" / "voicegender.tflite")
    # v2 trained on LibriSpeech speakers that are validation speakers here: no held-out figure there.
    logits = {"shipped v2": logits_of(shipped, {n: c for n, c in sets.items() if n != VALIDATION})}
    minutes = {}
    for name, (d, settings, keep, n) in runs.items():
        started = time.monotonic()
        model = device_model(*train_variant(d, settings, keep, n, args.cache_dir), settings)
        logits[name] = logits_of(model, sets)
        minutes[name] = (time.monotonic() - started) / 60
        print(name, f"{minutes[name]:.1f} min", flush=True)
    del data, runs, d  # each recipe below has its own windows (another 700 MB)
    other_windows = {
        "no short-speech windows": dataclasses.replace(
            s, windows=dataclasses.replace(s.windows, p_short=0.0)
        ),
        "men's F0 raised up to 14 semitones (not 8)": dataclasses.replace(
            s, augment=dataclasses.replace(s.augment, male_f0_semitones=(0.0, 14.0))
        ),
        "F0 changed in every augmented copy (not half)": dataclasses.replace(
            s, augment=dataclasses.replace(s.augment, p_f0=1.0)
        ),
        "second training seed": dataclasses.replace(s, train=dataclasses.replace(s.train, seed=2)),
    }
    for name, changed in other_windows.items():
        started = time.monotonic()
        d = ship.prepare_training_data(specs, ship.SHIP_CV_TABLES, changed, args.cache_dir)
        model = device_model(*train_variant(d, changed, everyone, steps, args.cache_dir), changed)
        logits[name] = logits_of(model, sets)
        minutes[name] = (time.monotonic() - started) / 60
        print(name, f"{minutes[name]:.1f} min", flush=True)
        del d
    for a, b in ENSEMBLES:
        logits[f"{a} + {b}"] = {
            n: {k: list(np.mean([logits[a][n][k], logits[b][n][k]], axis=0)) for k in logits[a][n]}
            for n in sets
            if n in logits[a] and n in logits[b]
        }
    results = {}
    for name, per_set in logits.items():
        results[name] = {}
        for set_name, per in per_set.items():
            female = np.array([c.female for c in sets[set_name]])
            results[name][set_name] = {k: figures(np.array(v), female, s.thresholds) for k, v in per.items()}
    text = table(results, steps)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(
            json.dumps({"steps": steps, "minutes": minutes, "results": results}, indent=1)
        )


def table(results: dict[str, dict], steps: int) -> str:
    names = list(results["recipe"])
    evals = [n for n in names if n != VALIDATION]
    short = [n.split(" (")[0] for n in names]
    lines = [
        "# Other recipes and ensembles",
        "",
        f"Balanced accuracy (%) of each model through the device pipeline (int8; undecided clips count as "
        f"not right); the recipe trains {steps} gradient steps. Macro: over the evaluation-only sets. "
        "Shipped v2 was trained on some of the validation speakers (LibriSpeech), so it and its ensemble "
        "have no validation figure.",
    ]
    for length in ("whole", *map(str, LENGTHS)):
        title = "Whole clips" if length == "whole" else f"After the first {length} s of speech"
        lines += ["", f"## {title}", "", "| model | " + " | ".join(short) + " | macro |"]
        lines.append("|---|" + "---|" * len(names) + "---|")
        for model, per_set in results.items():
            values = [per_set[n][length]["balanced"] if n in per_set else math.nan for n in names]
            cells = ["" if math.isnan(v) else f"{100 * v:.1f}" for v in values]
            macro = 100 * np.nanmean([per_set[n][length]["balanced"] for n in evals])
            lines.append(f"| {model} | " + " | ".join(cells) + f" | {macro:.1f} |")
    lines += [
        "",
        "## Whole clips: right / uncertain / wrong (%) at the shipped band",
        "",
        "| model | " + " | ".join(short) + " |",
        "|---|" + "---|" * len(names),
    ]
    for model, per_set in results.items():
        whole = [per_set[n]["whole"] if n in per_set else None for n in names]
        three = ("right", "uncertain", "wrong")
        cells = ["/".join(f"{100 * w[k]:.0f}" for k in three) if w else "" for w in whole]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

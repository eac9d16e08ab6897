#!/usr/bin/env python3
"""Does a teacher help? A gender probe on Resemblyzer's speaker embeddings (training/teacher.py),
fitted on the shipped recipe's training speakers, measured on its own on every evaluation-only set, then
distilled into the shipped recipe: each training window learns (1 - alpha) * label + alpha * the
probe's p_female for its clip (cross-fitted by speaker folds). alpha = 0 is the plain recipe, trained
in the same run for the comparison; each model trains the shipped model's number of steps and is
scored in int8 through the device pipeline.

    .venv/bin/python scripts/teacher_check.py [--alphas 0,0.5] [--out models/report/teacher_check.md]

The probe's strength (its L2 penalty) is chosen on the validation speakers' log-loss, never on an
evaluation-only set. Embeddings and models are cached in the cache directory; the teacher's venv
(.venv-teacher, ~1.2 GB with a CPU build of PyTorch) is made on first use.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from voicegender.frontend import Frontend
from voicegender.model import Thresholds
from voicegender_training import ship, teacher
from voicegender_training.device_eval import balanced_right
from voicegender_training.evaluate import EvalClip, decide, three_way
from voicegender_training.features import clip_window_starts, window_length
from voicegender_training.paths import REPO, SHARED_DATA
from voicegender_training.report import MIN_TABLE_CLIPS
from voicegender_training.train import total_steps
from voicegender_training.variant import device_model, headline_of, train_variant
from voicegender_training.weights import window_weights

L2_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
"""Probe penalties tried on the validation speakers."""


def window_embeddings(
    data: ship.TrainingData, s: ship.ShipSettings, venv: Path, cache_dir: Path
) -> np.ndarray:
    """Per training window, the teacher's embedding of the clean audio at that window's place in its
    clip (an augmented copy's window sits within one hop of it); zeros where it could not read the clip."""
    frontend = Frontend(s.frontend)
    hop, sr = s.frontend.hop_length, s.frontend.sample_rate
    seconds = window_length(s.frontend, s.windows) / sr
    starts = {
        c.path: (clip_window_starts(a, frontend, s.windows)[1] * hop / sr).tolist()
        for c, a in zip(data.train_clips, data.train_audio, strict=True)
    }
    cache = cache_dir / "teacher" / f"resemblyzer-{teacher.RESEMBLYZER_VERSION}-windows.jsonl"
    emb = teacher.embed_windows(starts, seconds, venv, cache)
    out = np.zeros((len(data.y_train), teacher.EMBEDDING_SIZE), np.float32)
    clip, variant = data.train_set.clip, data.train_set.variant
    # Windows are stored clip by clip, each variant in the order of its clip's starts.
    first = np.r_[0, np.flatnonzero((np.diff(clip) != 0) | (np.diff(variant) != 0)) + 1]
    rank = np.arange(len(clip)) - np.repeat(first, np.diff(np.r_[first, len(clip)]))
    for i, c in enumerate(data.train_clips):
        rows = np.flatnonzero(clip == i)
        if c.path not in emb or len(rows) == 0:
            continue
        if np.max(rank[rows]) >= len(emb[c.path]):
            raise SystemExit(f"teacher_check: {c.path}: the windows cut now differ from the cached ones")
        out[rows] = emb[c.path][rank[rows]]
    return out


def window_targets(
    data: ship.TrainingData, embeddings: np.ndarray, probes: list[teacher.Probe], fold_of: dict[str, int]
) -> np.ndarray:
    """Per training window, the held-out probe's p_female for its embedding; the label where it has none."""
    targets = data.y_train.astype(np.float64)
    have = np.any(embeddings != 0, axis=1)
    speakers = np.array([ship.speaker_key(c) for c in data.train_clips], dtype=object)[data.train_set.clip]
    targets[have] = teacher.held_out_p(probes, fold_of, embeddings[have], list(speakers[have]))
    return targets


def probe_figures(p: np.ndarray, female: np.ndarray, band: Thresholds) -> dict[str, float]:
    """Balanced accuracy (p >= 0.5; over the genders the set has) and right / uncertain / wrong at the
    shipped band, per clip."""
    shares = three_way(decide(p, band), female)
    return {
        "balanced": balanced_right(np.where(p >= 0.5, "female", "male"), female),
        **{k: shares[k] for k in ("right", "uncertain", "wrong")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alphas", default="0,0.5", help="comma-separated distillation weights in [0, 1]")
    ap.add_argument(
        "--embedding-weight",
        type=float,
        default=0.0,
        help="also train with labels plus this weight times the cosine distance from each window's "
        "teacher embedding (an extra head, dropped after training); 0: not",
    )
    ap.add_argument("--seeds", default="1", help="training seeds (each run is trained once per seed)")
    ap.add_argument("--out", type=Path, help="write the tables (markdown) and figures (.json) here too")
    ap.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    ap.add_argument("--cache-dir", type=Path, default=REPO / "cache")
    ap.add_argument("--venv", type=Path, default=REPO / ".venv-teacher")
    ap.add_argument(
        "--windows",
        action="store_true",
        help="also distil window by window (embeds every clean training window)",
    )
    args = ap.parse_args()
    try:
        alphas = [float(a) for a in args.alphas.split(",")]
    except ValueError:
        ap.error(f"--alphas {args.alphas}: not a comma-separated list of numbers")
    if any(not 0 <= a <= 1 for a in alphas):
        ap.error(f"--alphas {args.alphas}: each must be between 0 and 1")
    try:
        seeds = [int(v) for v in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds {args.seeds}: not a comma-separated list of integers")
    logging.basicConfig(level=logging.WARNING)
    s = ship.ShipSettings()
    specs, eval_specs = ship.shipped_specs(args.data_dir)
    data = ship.prepare_training_data(specs, ship.SHIP_CV_TABLES, s, args.cache_dir)
    eval_sets = {
        name: clips
        for name, clips in ship.read_eval_sets(eval_specs, ship.SHIP_CV_TABLES).items()
        if len(clips) >= MIN_TABLE_CLIPS
    }
    validation = ship.adult_validation(data)

    started = time.monotonic()
    paths = [c.path for c in data.train_clips] + [Path(c.path) for c in validation]
    paths += [Path(c.path) for clips in eval_sets.values() for c in clips]
    cache = args.cache_dir / "teacher" / f"resemblyzer-{teacher.RESEMBLYZER_VERSION}.jsonl"
    emb = teacher.embed(paths, args.venv, cache)
    embed_minutes = (time.monotonic() - started) / 60

    # The probe, on whole training clips weighted as the recipe weights them (one weight per clip).
    have = np.array([c.path in emb for c in data.train_clips])
    train = [c for c, h in zip(data.train_clips, have, strict=True) if h]
    x = np.stack([emb[c.path]["whole"] for c in train])
    female = np.array([c.gender == "female" for c in train])
    weight = window_weights(train, np.arange(len(train)))
    val = [c for c in validation if Path(c.path) in emb]
    xv = np.stack([emb[Path(c.path)]["whole"] for c in val])
    fv = np.array([c.female for c in val])
    wv = np.where(fv, 0.5 / fv.mean(), 0.5 / (1 - fv.mean()))  # both genders weigh the same
    losses = {
        l2: teacher.weighted_log_loss(teacher.fit_probe(x, female, weight, l2).p_female(xv), fv, wv)
        for l2 in L2_GRID
    }
    l2 = min(losses, key=losses.get)
    probe = teacher.fit_probe(x, female, weight, l2)

    def on(clips: list[EvalClip], span: str) -> dict[str, float]:
        kept = [c for c in clips if Path(c.path) in emb]
        p = probe.p_female(np.stack([emb[Path(c.path)][span] for c in kept]))
        return probe_figures(p, np.array([c.female for c in kept]), s.thresholds) | {"clips": len(kept)}

    probe_rows = {
        name: {span: on(clips, span) for span in teacher.SPANS}
        for name, clips in {"validation": validation, **eval_sets}.items()
    }
    print(json.dumps({"l2": l2, "losses": losses, "probe": probe_rows}), flush=True)

    # Distillation: targets from probes that never saw the clip's speaker.
    speakers = [ship.speaker_key(c) for c in train]
    fold_of = teacher.speaker_folds(speakers, seed=s.train.seed)
    probes = teacher.fold_probes(x, female, weight, speakers, fold_of, l2)
    p_clip = teacher.held_out_p(probes, fold_of, x, speakers)
    female_all = np.array([c.gender == "female" for c in data.train_clips], np.float64)
    targets_of = {"clip": female_all.copy()}
    targets_of["clip"][have] = p_clip  # a clip the teacher could not read keeps its label
    targets_of["clip"] = targets_of["clip"][data.train_set.clip]
    embeddings = None
    if args.windows or args.embedding_weight:
        embeddings = window_embeddings(data, s, args.venv, args.cache_dir)
    if args.windows:
        targets_of["window"] = window_targets(data, embeddings, probes, fold_of)
    steps = total_steps(len(data.y_train), s.train)
    keep = np.ones(len(data.train_clips), bool)
    rows = []
    runs = [("none", 0.0)] if 0 in alphas else []
    runs += [(kind, a) for a in alphas if a > 0 for kind in targets_of]
    if args.embedding_weight:
        runs.append(("embedding", 0.0))
    for seed, (kind, alpha) in ((seed, run) for seed in seeds for run in runs):
        t0 = time.monotonic()
        targets = None if alpha == 0 else teacher.soft_targets(data.y_train, targets_of[kind], alpha)
        hint = (embeddings, args.embedding_weight) if kind == "embedding" else (None, 0.0)
        # The windows stay those of the recipe's seed; only the network's start and order change.
        s_run = dataclasses.replace(s, train=dataclasses.replace(s.train, seed=seed))
        model = device_model(*train_variant(data, s_run, keep, steps, args.cache_dir, targets, *hint), s)
        sets = {
            name: headline_of(model, clips) for name, clips in {"validation": validation, **eval_sets}.items()
        }
        row = {
            "targets": kind,
            "alpha": alpha,
            "seed": seed,
            "sets": {n: h["balanced_accuracy_p50"] for n, h in sets.items()},
            "three_way": {n: [h["right"], h["uncertain"], h["wrong"]] for n, h in sets.items()},
            "minutes": (time.monotonic() - t0) / 60,
        }
        row["macro"] = float(np.mean([v for n, v in row["sets"].items() if n != "validation"]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    facts = {
        "l2": l2,
        "steps": steps,
        "embedding_weight": args.embedding_weight,
        "embed_minutes": embed_minutes,
        "cross_fitted_disagree": {
            k: float(np.mean((t >= 0.5) != data.y_train)) for k, t in targets_of.items()
        },
    }
    text = table(probe_rows, rows, facts, s.thresholds)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        figures = {"facts": facts, "probe": probe_rows, "distilled": rows}
        args.out.with_suffix(".json").write_text(json.dumps(figures, indent=1))


def means(rows: list[dict]) -> list[dict]:
    """Per run (targets, alpha) trained with more than one seed, its figures averaged over the seeds."""
    out = []
    for run in dict.fromkeys((r["targets"], r["alpha"]) for r in rows):
        same = [r for r in rows if (r["targets"], r["alpha"]) == run]
        if len(same) > 1:
            sets = {n: float(np.mean([r["sets"][n] for r in same])) for n in same[0]["sets"]}
            out.append({"targets": run[0], "alpha": run[1], "sets": sets})
    return out


def table(probe: dict, rows: list[dict], facts: dict, band: Thresholds) -> str:
    names = [n for n in probe if n != "validation"]
    short = [n.split(" (")[0] for n in ["validation", *names]]
    head = "| | " + " | ".join(short) + " | macro (evaluation-only) |"
    rule = "|---|" + "---|" * (len(names) + 2)

    def label(row: dict) -> str:
        what = "labels only" if row["alpha"] == 0 else f"{row['targets']}-level, alpha {row['alpha']:g}"
        if row["targets"] == "embedding":
            what = f"labels + window embedding, weight {facts['embedding_weight']:g}"
        return f"{what}, seed {row['seed']}" if "seed" in row else f"{what}, mean of seeds"

    def macro(values: dict[str, float]) -> float:
        return 100 * float(np.mean([values[n] for n in names]))

    lines = [
        "# A teacher: a gender probe on Resemblyzer speaker embeddings",
        "",
        "Written by `scripts/teacher_check.py`. Balanced accuracy (%). Validation: adult speakers of the "
        "training corpora never trained on; the other columns are evaluation-only sets. The probe's L2 "
        f"penalty ({facts['l2']:g}) was chosen on validation log-loss.",
        "",
        "## The probe on its own (a 3-layer LSTM of 1.4 M parameters on 40 mel bands, about 140 M "
        "multiply-accumulates per second of audio, in PyTorch: a yardstick and a teacher, not a "
        "device model)",
        "",
        "A clip's speech as Resemblyzer's preprocessing keeps it: all of it, its first 1 s, its first 0.5 s.",
        "",
        head,
        rule,
    ]
    for span in teacher.SPANS:
        cells = {n: probe[n][span]["balanced"] for n in probe}
        lines.append(
            f"| probe, {span} {'s' if span != 'whole' else 'clip'} | "
            + " | ".join(f"{100 * cells[n]:.1f}" for n in ["validation", *names])
            + f" | {macro(cells):.1f} |"
        )
    lines += [
        "",
        f"Probe, whole clip, at the shipped band {band.male_below:.2f} / {band.female_above:.2f} "
        "(right / uncertain / wrong %):",
        "",
        "| " + " | ".join(short) + " |",
        "|" + "---|" * (len(names) + 1),
        "| "
        + " | ".join(
            "{:.1f} / {:.1f} / {:.1f}".format(
                *(100 * probe[n]["whole"][k] for k in ("right", "uncertain", "wrong"))
            )
            for n in ["validation", *names]
        )
        + " |",
        "",
        "## Distilled into the shipped recipe (int8, device pipeline, whole clips)",
        "",
        f"Every model trains {facts['steps']} steps on the same windows, from the seed in its row; 'labels "
        "only' is the plain recipe. "
        "Clip-level: every window of a clip learns the probe's p for the whole clip; window-level: for "
        "that window's second of clean audio; window embedding: labels, and an extra head (dropped after "
        "training) learns the teacher's embedding of the window's clean second from the CNN's pooled "
        "features (cosine distance). The cross-fitted probe disagrees with the label on "
        + " and ".join(
            f"{100 * v:.1f}% of the training windows ({k}-level)"
            for k, v in facts["cross_fitted_disagree"].items()
        )
        + ".",
        "",
        head.replace("| |", "| targets |", 1),
        rule,
    ]
    for r in rows + means(rows):
        lines.append(
            f"| {label(r)} | "
            + " | ".join(f"{100 * r['sets'][n]:.1f}" for n in ["validation", *names])
            + f" | {macro(r['sets']):.1f} |"
        )
    lines += ["", "Uncertain share (%) at the shipped band:", "", head.replace("| |", "| targets |", 1), rule]
    for r in rows:
        unc = {n: r["three_way"][n][1] for n in r["three_way"]}
        lines.append(
            f"| {label(r)} | "
            + " | ".join(f"{100 * unc[n]:.1f}" for n in ["validation", *names])
            + f" | {macro(unc):.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

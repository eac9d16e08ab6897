#!/usr/bin/env python3
"""Accuracy against the number of speakers in training: the shipped recipe (``voicegender-train ship``)
trained on nested subsets of its training speakers, each exported to int8 and scored through the device
pipeline on the validation speakers of the training corpora and on every evaluation-only set, beside
inaSpeechSegmenter on the same clips (from its cache; `voicegender-train evaluate` fills it).

    .venv/bin/python scripts/speaker_curve.py [--fractions 0.0625,0.25,0.5,1]
        [--out models/report/speaker_curve.md]

A fraction keeps that share of the speakers of every corpus family and gender (at least one), the same
speakers at every larger fraction. Every model trains the shipped model's number of gradient steps, so
a point differs from the next in its speakers only. Models are cached in the cache directory (keyed on
the speakers, the settings and the training code).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from voicegender_training import ship
from voicegender_training.paths import REPO, SHARED_DATA
from voicegender_training.report import MIN_TABLE_CLIPS
from voicegender_training.splits import nested_speakers
from voicegender_training.train import total_steps
from voicegender_training.variant import device_model, headline_of, train_variant
from voicegender_training.weights import family_key


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fractions", default="0.0625,0.25,0.5,1", help="comma-separated shares of the speakers")
    ap.add_argument("--out", type=Path, help="write the table (markdown) and its figures (.json) here too")
    ap.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    ap.add_argument("--cache-dir", type=Path, default=REPO / "cache")
    args = ap.parse_args()
    fractions = sorted(float(f) for f in args.fractions.split(","))
    if not fractions or fractions[0] <= 0 or fractions[-1] > 1:
        ap.error(f"--fractions {args.fractions}: each must be in (0, 1]")
    logging.basicConfig(level=logging.WARNING)
    s = ship.ShipSettings()
    specs, eval_specs = ship.shipped_specs(args.data_dir)
    data = ship.prepare_training_data(specs, ship.SHIP_CV_TABLES, s, args.cache_dir)
    steps = total_steps(len(data.y_train), s.train)
    eval_sets = {
        name: clips
        for name, clips in ship.read_eval_sets(eval_specs, ship.SHIP_CV_TABLES).items()
        if len(clips) >= MIN_TABLE_CLIPS
    }
    adults = ship.adult_validation(data)
    found = ship.run_peer(eval_sets, args.cache_dir)
    peer = {} if isinstance(found, str) else {n: ship.peer_figures(c, found) for n, c in eval_sets.items()}
    rows = []
    for fraction in fractions:
        started = time.monotonic()
        speakers = nested_speakers(data.train_clips, fraction, s.train.seed, group=family_key)
        keep_clip = np.array([ship.speaker_key(c) in speakers for c in data.train_clips], bool)
        model = device_model(*train_variant(data, s, keep_clip, steps, args.cache_dir), s)
        val = headline_of(model, adults)
        sets = {name: headline_of(model, clips) for name, clips in eval_sets.items()}
        row = {
            "fraction": fraction,
            "speakers": len(speakers),
            "windows": int(keep_clip[data.train_set.clip].sum()),
            "validation": val["balanced_accuracy_p50"],
            "sets": {n: h["balanced_accuracy_p50"] for n, h in sets.items()},
            "three_way": {n: [h["right"], h["uncertain"], h["wrong"]] for n, h in sets.items()},
            "minutes": (time.monotonic() - started) / 60,
        }
        row["macro"] = float(np.mean(list(row["sets"].values())))
        rows.append(row)
        print(json.dumps(row), flush=True)
    text = table(rows, {n: f["balanced_accuracy_p50"] for n, f in peer.items()}, steps)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps({"steps": steps, "rows": rows}, indent=1))


def table(rows: list[dict], peer: dict[str, float], steps: int) -> str:
    names = list(rows[0]["sets"])
    short = [n.split(" (")[0] for n in names]
    lines = [
        "# Balanced accuracy against speakers in training",
        "",
        f"The shipped recipe on nested subsets of its training speakers, {steps} gradient steps each, int8, "
        "decided through the device pipeline (undecided clips count as not right). Validation: adult "
        "speakers of the training corpora never trained on. The other columns are evaluation-only sets.",
        "",
        "| speakers | windows | validation | " + " | ".join(short) + " | macro |",
        "|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for r in rows:
        cells = [f"{100 * r['sets'][n]:.1f}" for n in names]
        lines.append(
            f"| {r['speakers']} | {r['windows']} | {100 * r['validation']:.1f} | "
            + " | ".join(cells)
            + f" | {100 * r['macro']:.1f} |"
        )
    if peer:
        cells = [f"{100 * peer[n]:.1f}" if n in peer else "" for n in names]
        mac = np.mean([peer[n] for n in names if n in peer])
        lines.append("| inaSpeechSegmenter | | | " + " | ".join(cells) + f" | {100 * mac:.1f} |")
    if len(rows) >= 2:
        x = np.log2([r["speakers"] for r in rows])
        slope, intercept = np.polyfit(x, [100 * r["macro"] for r in rows], 1)
        lines += [
            "",
            f"Least-squares line through the macro column: {slope:+.1f} points per doubling of the speakers.",
        ]
        if slope > 0:
            need = 2 ** ((96 - intercept) / slope)
            lines.append(
                f"If that line held, 96% would need about {need:,.0f} training speakers of the same corpora."
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

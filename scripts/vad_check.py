#!/usr/bin/env python3
"""The device's numpy VAD against a reference VAD (silero-vad, ``training/reference_vad.py``) on every
evaluation-only set and on validation speakers of the training corpora: how much of the reference's
speech ours misses, how much of ours the reference calls non-speech, and how many clips ours leaves
without enough speech for a decision when the reference finds enough.

    .venv/bin/python scripts/vad_check.py [--out models/report/vad_check.md] [--set f0_max_hz=400]

``--set`` changes a ``[vad]`` setting of ours for the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np

from voicegender.decision import DecisionSettings
from voicegender.errors import VoicegenderError
from voicegender.vad import VadSettings, VoiceActivityDetector
from voicegender_training import ship
from voicegender_training.families import family_of
from voicegender_training.paths import REPO, SHARED_DATA
from voicegender_training.reference_vad import VERSION, Agreement, ReferenceVadError, SileroVad, agreement
from voicegender_training.splits import split_by_speaker


def labels_of(audio: np.ndarray, vad: VadSettings, reference: SileroVad) -> tuple[np.ndarray, np.ndarray]:
    """(ours, reference) speech label per analysis frame of one clip."""
    detector = VoiceActivityDetector(vad)
    ours = np.concatenate((detector.push(audio), detector.flush())).astype(bool)
    fe = detector.frontend
    return ours, reference.speech_frames(audio, ours.size, fe.hop_length, fe.win_length)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write the table (markdown) here too")
    ap.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    ap.add_argument("--cache-dir", type=Path, default=REPO / "cache")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a [vad] setting")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        if any("=" not in item for item in args.set):
            raise ValueError(f"--set {args.set}: each must be KEY=VALUE")
        changes = dict(item.split("=", 1) for item in args.set)
        unknown = set(changes) - {f.name for f in dataclasses.fields(VadSettings)}
        if unknown:
            raise ValueError(f"--set {', '.join(sorted(unknown))}: not a [vad] setting")
        vad = VadSettings(**{k: float(v) for k, v in changes.items()})
        reference = SileroVad(args.cache_dir)
    except (ValueError, TypeError, VoicegenderError, ReferenceVadError) as exc:
        sys.exit(f"vad_check: {exc}")
    min_speech = DecisionSettings().min_speech_seconds
    specs, eval_specs = ship.shipped_specs(args.data_dir)
    sets = ship.read_eval_sets(eval_specs, ship.SHIP_CV_TABLES, voiced_share=False)
    s = ship.ShipSettings()
    split = split_by_speaker(
        [c for spec, _ in specs for c in ship.read_clips(spec, ship.SHIP_CV_TABLES)], s.split
    )
    val_clips, val_audio, _ = ship.load_clips(list(split.validation), s.min_seconds)
    val_by_family: dict[str, list] = {}
    for clip in ship.eval_clips(val_clips, val_audio, voiced_share=False):
        val_by_family.setdefault(f"validation: {family_of(dict(clip.attributes)['corpus'])}", []).append(clip)
    hop = VoiceActivityDetector(vad).frontend.hop_length / 16000
    rows: list[tuple[str, int, Agreement]] = []
    for name, clips in {**sets, **val_by_family}.items():
        pairs = [labels_of(c.audio, vad, reference) for c in clips]
        rows.append((name, len(clips), agreement(pairs, hop, min_speech)))
        print(name, rows[-1][2], flush=True)
    text = table(rows, min_speech, args.set)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


def table(rows: list[tuple[str, int, Agreement]], min_speech: float, changes: list[str]) -> str:
    changed = f" ({', '.join(changes)})" if changes else ""
    lines = [
        f"# The device VAD{changed} against silero-vad {VERSION}",
        "",
        "Per 10 ms frame. Missed: share of silero's speech ours calls non-speech. Extra: share of ours "
        f"silero calls non-speech. Starved: clips where silero finds {min_speech} s of speech (enough for "
        "a decision) and ours does not.",
        "",
        "| set | clips | silero speech s/clip | ours s/clip | missed | extra | starved |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, n, a in rows:
        lines.append(
            f"| {name} | {n} | {a.reference_seconds / n:.2f} | {a.ours_seconds / n:.2f} | "
            f"{100 * a.missed:.1f}% | {100 * a.extra:.1f}% | {100 * a.starved:.1f}% |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Compare network shapes and epochs for the shipped recipe on the VALIDATION speakers of the training
corpora (never the evaluation-only sets): each candidate trains on the shipped model's cached training
windows, is exported to int8 and decides every validation clip through the device pipeline.

    .venv/bin/python scripts/model_choice.py --candidate "32,48-64-64-64,1-2-1-2,0.5,5" ...

A candidate is "stem,blocks,strides,dropout,epochs". Prints one line per candidate: balanced accuracy
(undecided not right), right / uncertain / wrong at the shipped band, MACs, int8 bytes, minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from voicegender.model import load_model
from voicegender_training import ship
from voicegender_training.cnn import CnnSettings, count_macs
from voicegender_training.device_eval import headline, score_set
from voicegender_training.export import to_int8_tflite, write_model
from voicegender_training.paths import REPO, SHARED_DATA
from voicegender_training.train import fit
from voicegender_training.weights import window_weights


def parse(text: str) -> tuple[CnnSettings, int]:
    stem, blocks, strides, dropout, epochs = text.split(",")
    return (
        CnnSettings(
            int(stem),
            tuple(int(b) for b in blocks.split("-")),
            tuple(int(s) for s in strides.split("-")),
            float(dropout),
        ),
        int(epochs),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidate", action="append", default=[])
    ap.add_argument("--model", type=Path, action="append", default=[], help="score an existing model too")
    ap.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    ap.add_argument("--cache-dir", type=Path, default=REPO / "cache")
    ap.add_argument("--keep", type=Path, help="also write each candidate's model (.tflite + .json) here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    s = ship.ShipSettings()
    specs, _ = ship.shipped_specs(args.data_dir)
    data = ship.prepare_training_data(specs, ship.SHIP_CV_TABLES, s, args.cache_dir)
    train_set, y, y_val = data.train_set, data.y_train, data.y_val
    weights = window_weights(data.train_clips, train_set.clip)
    val_eval = ship.eval_clips(data.val_clips, data.val_audio, voiced_share=False)
    for path in args.model:
        print(f"{path}: {score_line(load_model(path), val_eval)}", flush=True)
    for text in args.candidate:
        cnn, epochs = parse(text)
        started = time.monotonic()
        train = dataclasses.replace(s.train, epochs=epochs)
        model, norm, _ = fit(train_set.x, y, data.val_set.x, y_val, train, cnn, sample_weight=weights)
        tflite = to_int8_tflite(model, norm(train_set.x), seed=s.train.seed)
        with tempfile.TemporaryDirectory() as tmp:
            path = (args.keep or Path(tmp)) / f"{text.replace(',', '_')}.tflite"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_model(
                path, tflite, s.frontend, s.windows.window_frames, s.infer_hop_frames, norm, s.thresholds, {}
            )
            device_model = load_model(path)
            line = score_line(device_model, val_eval)
        minutes = (time.monotonic() - started) / 60
        print(
            f"{text}: {line}  MACs {count_macs(model) / 1e6:.1f} M  int8 {len(tflite)} B  {minutes:.1f} min",
            flush=True,
        )


def score_line(device_model, clips) -> str:
    """Validation figures of one model through the device pipeline, whole clips and 0.5 s of speech."""
    scores, verdicts, _ = score_set(device_model, clips, lengths=(0.5,))
    h = headline(verdicts, scores.y, device_model)
    logits = scores.by_duration[0.5]
    ok = ~np.isnan(logits)
    short = float(np.mean((logits[ok] > 0) == scores.y[ok])) if ok.any() else float("nan")
    return (
        f"balanced {h['balanced_accuracy_p50']:.3f}  right {h['right']:.3f} uncertain {h['uncertain']:.3f} "
        f"wrong {h['wrong']:.3f}  0.5 s accuracy {short:.3f}"
    )


if __name__ == "__main__":
    main()

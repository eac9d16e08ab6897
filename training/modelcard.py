"""Write models/MODEL_CARD.md from the evaluation results and the model metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .report import pct


def write_model_card(path: Path, results: dict[str, Any], meta: dict[str, Any], report: Path) -> Path:
    m, td = results["model"], meta["training_data"]
    fe = meta["frontend"]

    def called(q: dict[str, Any], truth: str, label: str) -> str:
        row = q["int8"]["confusion"][truth]
        return pct(row[label] / max(sum(row.values()), 1))

    rows = [
        f"| {name} | {q['int8']['speakers_female']}/{q['int8']['speakers_male']} | {q['int8']['clips']} | "
        f"{pct(q['int8']['clip_balanced_accuracy'])} | {pct(q['float']['clip_balanced_accuracy'])} | "
        f"{pct(q['int8']['window_balanced_accuracy'])} | {pct(q['int8']['uncertain_share'])} | "
        f"{called(q, 'male', 'female')} / {called(q, 'female', 'male')} |"
        for name, q in results["sets"].items()
    ]
    base = results.get("baseline", {}).get("scores", {})
    base_rows = [f"| {k} | {pct(v)} |" for k, v in base.items()]
    licences = ", ".join(f"{k} ({v})" for k, v in td["licences"].items())
    th = meta["thresholds"]
    aug = meta["settings"]["augment"]
    rel = os.path.relpath(report, path.parent)
    text = f"""# Model card: voicegender int8 CNN (`{m["file"]}`)

## What it does
Given about one second or more of speech at 16 kHz, it estimates whether the voice **sounds** male
or female (p_female). The output is *perceived voice gender*: an acoustic property of a voice. It
says nothing about a person's gender identity, sex, or anything else about who they are, and must not
be used to make decisions about people.

## Intended use
A demonstration device and a teaching example of on-device speech classification: a Raspberry Pi
lights an LED for the voice it hears. Not intended for surveillance, access control, profiling or
any decision about an individual. No audio is stored or sent anywhere by the device.

## Model
- Depthwise-separable CNN on MFCCs: {m["params"]} parameters, {m["bytes"]} bytes as a full-integer
  int8 TFLite file, {m["macs"] / 1e6:.2f} M multiply-accumulates per window.
- Input: {meta["window_frames"]} frames ({m["window_seconds"]:.2f} s) of {fe["n_mfcc"]} MFCCs from
  {fe["n_mels"]} mel bands {fe["fmin"]:g}-{fe["fmax"]:g} Hz (25 ms window, 10 ms hop), standardised per
  coefficient, c0 relative to the window. The device slides it every {m["hop_seconds"]:.2f} s and
  averages log-odds over the voiced windows of an utterance.
- Output: log-odds of "female". Decision: male if p_female <= {th["male_below"]}, female if
  >= {th["female_above"]}, otherwise "uncertain".

## Training data (all licences allow redistribution of a trained model)
- {td["clips"]} clips, {td["hours"]} hours, {td["speakers_female"]} female and {td["speakers_male"]}
  male speakers from: {licences}.
- Each clip also used in {td["augmented_copies"]} augmented copies: additive white/pink/brown noise
  (3-30 dB SNR), synthetic room reverb (RT60 0.15-0.8 s), random microphone EQ with 50-300 Hz
  high-pass and 3-8 kHz low-pass, vocal-effort spectral tilt, gain and clipping.
- With probability {aug["p_f0"]:g} a copy also has its F0 changed by the WORLD vocoder, keeping the
  spectral envelope (formants, i.e. vocal tract length), and only towards the other gender's range,
  as in aroused or subdued speech: men up to {aug["male_f0_semitones"][1]:g} semitones higher, women
  up to {-aug["female_f0_semitones"][0]:g} lower. Plain pitch shifting or speed changes, which move
  the formants too, are not used.
- Attribution: LibriSpeech (c) 2014 Vassil Panayotov et al., CC BY 4.0; CSTR VCTK Corpus
  (c) University of Edinburgh, CC BY 4.0; AISHELL-3 (c) Beijing Shell Shell Technology, Apache 2.0;
  Mozilla Common Voice (Persian), CC0.
- Not trained on: EmoDB (no licence for redistribution; used for evaluation only), the LibriSpeech
  test-clean speakers (held out; two are the project's test fixtures).

## Evaluation (speaker-disjoint; details in [`{rel}`]({rel}))

| set | speakers F/M | clips | clips int8 | clips float | 1 s windows | uncertain | men→F / women→M |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

The original system's approach (dense network on mel-mean vectors, random clip split) for comparison:

| evaluated on | balanced accuracy |
|---|---|
{chr(10).join(base_rows) if base_rows else "| (not run) | |"}

{_crossval_section(report, meta, path.parent)}## Known limits
- Trained mostly on read English audiobooks by adults (LibriSpeech), plus a few UK English, Mandarin
  and Persian speakers. Other languages, spontaneous or emotional speech, and children are
  under-represented; children's voices (high F0, short vocal tracts) will mostly be called "female".
- Very low female voices and very high male voices are the expected errors, and so are voices
  altered by illness, whispering, singing or shouting. The EmoDB row shows it: acted anger and joy
  raise men's pitch, and sad, breathy women's voices are the remaining errors there.
- The project's goals (held-out LibriSpeech clips >= 99%, EmoDB clips >= 97.7% balanced accuracy, at
  most 5% uncertain) are not all met by this model; the table above is what it does.
- Noise, strong reverberation and cheap microphones were simulated, not recorded: real rooms and
  microphones may do worse. Small test sets (tens of speakers) mean each figure above has an
  uncertainty of a few points.
- Two voices at once give an average of both.
"""
    path.write_text(text)
    return path


def _crossval_section(report: Path, meta: dict[str, Any], card_dir: Path) -> str:
    """Cross-validation figures, when ``crossval.json`` beside the report is for this model's recipe."""
    path = report.parent / "crossval.json"
    try:
        cv = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    if cv.get("settings") != meta["settings"]:
        return ""  # another recipe's numbers would mislead
    pooled = cv["pooled_held_out"]

    def line(name: str, m: dict[str, Any]) -> str:
        return (
            f"- {name}: {m['clips']} clips, {m['speakers_female']}/{m['speakers_male']} speakers F/M: clips "
            f"{pct(m['clip_balanced_accuracy'])}, 1 s windows {pct(m['window_balanced_accuracy'])}, "
            f"uncertain {pct(m['uncertain_share'])}"
        )

    lines = [line("all held-out speakers" if name == "all" else name, m) for name, m in pooled.items()]
    for name, by in cv["sets"].items():
        c = by["clip_balanced_accuracy"]
        lines.append(
            f"- {name}, scored by each fold's model: clips {pct(c['mean'])} ± {100 * c['sd']:.1f} "
            f"(range {pct(c['min'])}-{pct(c['max'])})"
        )
    rel = os.path.relpath(path.with_suffix(".md"), card_dir)
    return (
        f"## Cross-validation of the same recipe ([`{rel}`]({rel}))\n"
        f"{cv['k']} speaker-disjoint folds, float models; every training-corpus speaker is held out once,\n"
        "so these figures rest on all of them, not on one small test split (balanced accuracy):\n"
        + "\n".join(lines)
        + "\n\n"
    )

"""Write models/MODEL_CARD.md from the evaluation results and the model metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .report import (
    band_text,
    baseline_description,
    large_sets,
    metric_definitions,
    pct,
    ruw,
    small_sets_note,
    summary_table,
    weak_groups,
)

GOALS = (
    ("held-out speakers (test split)", "clip_balanced_accuracy", 0.99),
    ("EmoDB (German, acted; cross-corpus)", "clip_balanced_accuracy", 0.977),
)
"""The project brief's accuracy goals (balanced accuracy of clips at p = 0.5), by evaluation set."""
MAX_UNCERTAIN = 0.05
"""The project brief's goal for the share of uncertain clips."""


def goals_text(results: dict[str, Any]) -> str:
    """The project's goals against this model's figures, for the sets it was measured on."""
    parts = []
    for name, key, goal in GOALS:
        q = results["sets"].get(name, {}).get("int8")
        if q is None:
            continue
        parts.append(
            f"{name}: balanced accuracy at p = 0.5 >= {pct(goal)}: {pct(q[key])}, "
            f"{'met' if q[key] >= goal else 'not met'}; at most {pct(MAX_UNCERTAIN)} uncertain: "
            f"{pct(q['uncertain_share'])}, {'met' if q['uncertain_share'] <= MAX_UNCERTAIN else 'not met'}"
        )
    return "; ".join(parts)


def write_model_card(path: Path, results: dict[str, Any], meta: dict[str, Any], report: Path) -> Path:
    m, td = results["model"], meta["training_data"]
    fe = meta["frontend"]
    th = meta["thresholds"]
    summary = "\n".join(summary_table(results))
    small = small_sets_note(results)
    definitions = "\n".join(metric_definitions(th))
    genders = "\n".join(
        f"| {name} | {ruw(by['int8']['band_by_gender'].get('female'))} | "
        f"{ruw(by['int8']['band_by_gender'].get('male'))} |"
        for name, by in large_sets(results).items()
    )
    base = results.get("baseline", {}).get("variants", {})
    if base:
        set_names = list(next(iter(base.values())))
        base_rows = "\n".join(
            f"| {name} | " + " | ".join(pct(v.get(name)) for v in base.values()) + " |" for name in set_names
        )
        baseline = (
            f"{baseline_description()}\n\n| evaluated on | {' | '.join(base)} |\n|---|"
            + "---|" * len(base)
            + f"\n{base_rows}\n"
        )
    else:
        baseline = "The original system's baseline was not run for this model.\n"
    goals = goals_text(results)
    weak = "; ".join(weak_groups(results)) or "none"
    licences = ", ".join(f"{k} ({v})" for k, v in td["licences"].items())
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

The int8 file as shipped, deciding with its own band ({band_text(th)}, uncertain in between).

{summary}
{(chr(10) + small + chr(10)) if small else ""}
{definitions}

| set | women: right / uncertain / wrong | men: right / uncertain / wrong |
|---|---|---|
{genders}

For comparison, the original system's approach:

{baseline}
{_crossval_section(report, meta, path.parent)}## Known limits
- Trained mostly on read English audiobooks by adults (LibriSpeech), plus a few UK English, Mandarin
  and Persian speakers. Other languages, spontaneous or emotional speech, and children are
  under-represented; children's voices (high F0, short vocal tracts) will mostly be called "female".
- Very low female voices and very high male voices are the expected errors, and so are voices
  altered by illness, whispering, singing or shouting. Groups of clips with fewer than 85% right
  (right / uncertain / wrong): {weak}.
- The project's goals against this model: {goals or "not measured on the goal sets"}.
- Noise, strong reverberation and cheap microphones were simulated, not recorded: real rooms and
  microphones may do worse. The test sets have tens of speakers (EmoDB ten), so each figure above
  is uncertain by several points (see the intervals).
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
        band = f"right / uncertain / wrong {ruw(m['band'])}; " if "band" in m else ""
        return (
            f"- {name}: {m['clips']} clips, {m['speakers_female']}/{m['speakers_male']} speakers F/M: {band}"
            f"balanced accuracy at p = 0.5 of clips {pct(m['clip_balanced_accuracy'])}, of 1 s windows "
            f"{pct(m['window_balanced_accuracy'])}; uncertain {pct(m['uncertain_share'])}"
        )

    lines = [line("all held-out speakers" if name == "all" else name, m) for name, m in pooled.items()]
    for name, by in cv["sets"].items():
        c, u = by["clip_balanced_accuracy"], by.get("uncertain_share")
        lines.append(
            f"- {name}, scored by each fold's model: balanced accuracy of clips at p = 0.5 {pct(c['mean'])} "
            f"± {100 * c['sd']:.1f} (range {pct(c['min'])}-{pct(c['max'])})"
            + (f"; uncertain {pct(u['mean'])}" if u else "")
        )
    rel = os.path.relpath(path.with_suffix(".md"), card_dir)
    return (
        f"## Cross-validation of the same recipe ([`{rel}`]({rel}))\n"
        f"{cv['k']} speaker-disjoint folds, float models at the same band; every training-corpus speaker is\n"
        "held out once, so these figures rest on all of them, not on one small test split:\n"
        + "\n".join(lines)
        + "\n\n"
    )

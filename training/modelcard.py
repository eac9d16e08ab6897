"""Write MODEL_CARD.md from one run's results and the model's metadata.

Everything data-dependent comes from the run: the training corpora with their licences (and the
attributions those licences ask for, only for the corpora present), the sets it was evaluated on,
every figure, and what a child's voice got. Fixed text is limited to what the model is and is for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .report import (
    ADULT_FROM,
    PROVENANCE,
    TEST_SET,
    band_start,
    band_text,
    baseline_description,
    called,
    goal_lines,
    large_sets,
    loco_table,
    macro_lines,
    metric_definitions,
    natural,
    pct,
    peer_notes,
    pool,
    ruw,
    small_sets_note,
    speech_table,
    summary_table,
    table,
    training_table,
    weak_groups,
)

F0_CHECK = "F0 check (qa_f0.csv)"
"""The attribute holding the corpora's F0 flag (``ship.F0_CHECK``)."""

ATTRIBUTIONS = {
    "librispeech": "LibriSpeech ASR corpus, (c) 2014 Vassil Panayotov, Guoguo Chen, Daniel Povey and "
    "Sanjeev Khudanpur (OpenSLR SLR12)",
    "speechocean762": 'speechocean762: Junbo Zhang et al., "speechocean762: An Open-Source Non-native '
    'English Speech Corpus For Pronunciation Assessment", Interspeech 2021 (arXiv 2104.01378; '
    "OpenSLR SLR101)",
    "vctk_samples": "CSTR VCTK Corpus, (c) The University of Edinburgh, Centre for Speech Technology "
    "Research",
    "vctk_p239": "CSTR VCTK Corpus (speaker p239), (c) The University of Edinburgh, Centre for Speech "
    "Technology Research",
    "aishell3_sample": "AISHELL-3, (c) Beijing Shell Shell Technology Co., Ltd. (OpenSLR SLR93)",
    "fsdd_digits": "Free Spoken Digit Dataset, Zohar Jackson and contributors",
    "cmu_arctic_samples": "CMU ARCTIC databases, John Kominek and Alan W Black, Language Technologies "
    "Institute, Carnegie Mellon University",
    "african_phone": "Yoruba speech recorded with Lig-Aikuma, Copyright (c) 2020 Sewade Ogun",
}
"""Attribution text by corpus name (``Clip.corpus``); printed only for corpora in the training data
whose licence asks for attribution."""
NO_ATTRIBUTION = ("cc0", "public domain")
"""Licences (lower-case prefixes) that ask for no attribution."""


def training_record(results: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    return results.get("training") or meta.get("training_data") or {}


def training_sets(td: dict[str, Any]) -> list[dict[str, Any]]:
    """The corpora as the run recorded them; from the licence table of older metadata without ``sets``."""
    if td.get("sets"):
        return td["sets"]
    return [{"corpus": name, "licence": licence} for name, licence in (td.get("licences") or {}).items()]


def attribution_lines(td: dict[str, Any]) -> list[str]:
    """One line per training corpus whose licence asks for attribution; CC0 corpora named once."""
    lines, free = [], []
    for s in training_sets(td):
        corpus, licence = s["corpus"], s.get("licence") or "licence not recorded"
        if licence.lower().startswith(NO_ATTRIBUTION):
            free.append(f"{corpus} ({licence})")
            continue
        source = f" (`{s['source']}`)" if s.get("source") else ""
        lines.append(f"- {ATTRIBUTIONS.get(corpus.lower(), corpus + source)}: {licence}.")
    if free:
        lines.append(f"- No attribution required: {', '.join(free)}.")
    return lines


def not_trained_on(results: dict[str, Any]) -> list[str]:
    lines = [f"- {name}: evaluation only." for name in results["sets"] if name != TEST_SET]
    if TEST_SET in results["sets"]:
        lines.append(
            "- The validation and test-split speakers of the training corpora (validation for choices, "
            f"test for the figures under {TEST_SET!r})."
        )
    return lines


def augmentation_lines(meta: dict[str, Any], td: dict[str, Any]) -> list[str]:
    """The augmentation the metadata records, with its ranges."""
    settings = meta.get("settings") or {}
    aug, win = settings.get("augment") or {}, settings.get("windows") or {}
    copies = td.get("augmented_copies", settings.get("variants"))
    if not aug or copies is None:
        return []
    lines = [
        f"- Each clip also used in {copies} augmented copies: additive white/pink/brown noise "
        f"(probability {aug['p_noise']:g}, {aug['snr_db'][0]:g}-{aug['snr_db'][1]:g} dB SNR), synthetic room "
        f"reverb ({aug['p_reverb']:g}, RT60 {aug['rt60'][0]:g}-{aug['rt60'][1]:g} s), a random microphone "
        f"response with band-limiting ({aug['p_eq']:g}), vocal-effort spectral tilt ({aug['p_tilt']:g}, "
        f"{aug['tilt_db_per_octave'][0]:g} to {aug['tilt_db_per_octave'][1]:g} dB per octave), gain "
        f"{aug['gain_db'][0]:g} to {aug['gain_db'][1]:g} dB and clipping.",
        f"- With probability {aug['p_f0']:g} a copy also has its F0 changed by the WORLD vocoder, keeping "
        "the spectral envelope (formants), and only towards the other gender's range: men up to "
        f"{aug['male_f0_semitones'][1]:g} semitones higher, women up to {-aug['female_f0_semitones'][0]:g} "
        "lower.",
    ]
    if win.get("p_short"):
        lo, hi = win["short_seconds"]
        lines.append(
            f"- {pct(win['p_short'])} of an augmented copy's windows keep only {lo:g}-{hi:g} s of speech, "
            "the rest of the window background noise or silence, as a single word gives."
        )
    if settings.get("min_training_age"):
        lines.append(
            f"- Speakers younger than {settings['min_training_age']} (where a corpus gives ages) were left "
            "out of training; they are in the test split and in leave-one-corpus-out (see Children)."
        )
    return lines


def _age_sources(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, age-band groups) from the test split, the other sets and the held-out families."""
    out = []
    for name, by in large_sets(results).items():
        groups = by["int8"].get("by_attribute", {}).get("age band")
        if groups:
            label = (
                "the shipped model on the test split" if name == TEST_SET else f"the shipped model on {name}"
            )
            out.append((label, groups))
    for family, v in (results.get("loco") or {}).items():
        groups = v["int8"].get("by_attribute", {}).get("age band")
        if groups:
            out.append((f"the model trained without {family}, on all of {family}", groups))
    return out


def children_lines(results: dict[str, Any]) -> list[str]:
    """What a child's voice gets, in plain words with the numbers, from every source with ages."""
    sources = _age_sources(results)
    if not sources:
        return ["This run has no clips with ages, so what a child's voice gets was not measured."]
    lines = []
    for label, groups in sources:
        bands = sorted(groups, key=natural)
        child = [b for b in bands if (band_start(b) or ADULT_FROM) < ADULT_FROM]
        adult = [b for b in bands if b not in child]
        if not child:
            continue
        parts = []
        for gender, young, grown in (("male", "boys", "men"), ("female", "girls", "women")):
            kids = pool([groups[b][gender] for b in child if gender in groups[b]])
            grownups = pool([groups[b][gender] for b in adult if gender in groups[b]])
            if kids:
                text = f"{young} ({kids['n']} clips) {called(kids, gender)}"
                if grownups:
                    text += f" (adult {grown}, {grownups['n']} clips: {called(grownups, gender)})"
                parts.append(text)
        span = f"{child[0].split('-')[0]}-{child[-1].split('-')[-1]}"
        lines.append(f"- Children aged {span}, {label}: " + "; ".join(parts) + ".")
        for b in child if len(child) > 1 else []:
            detail = [
                f"{'boys' if g == 'male' else 'girls'} ({groups[b][g]['n']}) {ruw(groups[b][g])}"
                for g in ("male", "female")
                if groups[b].get(g, {}).get("n")
            ]
            lines.append(f"  - aged {b}: " + "; ".join(detail) + " (right / uncertain / wrong)")
    if not lines:
        return ["This run's clips with ages are all adults', so what a child's voice gets was not measured."]
    return [
        "What a child's voice gets, from the clips with ages (right = the gender the corpus labels the "
        "child with):",
        "",
        *lines,
    ]


def f0_lines(results: dict[str, Any]) -> list[str]:
    """Speakers the corpora flag for an unusual median F0: what their clips were called, beside the same
    gender's unflagged speakers."""
    sources = [
        ("the shipped model on the test split" if n == TEST_SET else f"the shipped model on {n}", by["int8"])
        for n, by in large_sets(results).items()
    ]
    sources += [(f"the model trained without {f}", v["int8"]) for f, v in (results.get("loco") or {}).items()]
    lines = []
    for label, m in sources:
        groups = m.get("by_attribute", {}).get(F0_CHECK, {})
        plain = groups.get("not flagged", {})
        for flag, g in sorted(groups.items()):
            if flag == "not flagged":
                continue
            for gender, who in (("female", "women"), ("male", "men")):
                t = g.get(gender)
                if not t or not t.get("n"):
                    continue
                ref = plain.get(gender)
                ref_text = f"; unflagged {who}: {called(ref, gender)}" if ref and ref.get("n") else ""
                lines.append(
                    f"- {label}: {who} flagged `{flag}` ({t['n']} clip{'s' if t['n'] != 1 else ''}): "
                    f"{called(t, gender)}{ref_text}."
                )
    return lines or ["No clip in this run's sets has a speaker flagged by a `qa_f0.csv`."]


def write_model_card(path: Path, results: dict[str, Any], meta: dict[str, Any], report: Path) -> Path:
    path = Path(path)
    m, td = results["model"], training_record(results, meta)
    fe, th = meta["frontend"], meta["thresholds"]
    rel = os.path.relpath(report, path.parent)
    sets = training_sets(td)
    languages = sorted({lang for s in sets for lang in s.get("languages") or []})
    hours = f", {td['hours']} hours" if "hours" in td else ""
    lines = [
        f"# Model card: voicegender int8 CNN (`{m['file']}`)",
        "",
        "## What it does",
        "From speech at 16 kHz it estimates whether the voice **sounds** male or female (p_female). The "
        "output is *perceived voice gender*: an acoustic property of a voice. It says nothing about a "
        "person's gender identity, sex, or anything else about who they are, and must not be used to make "
        "decisions about people.",
        "",
        "## Intended use",
        "A demonstration device and a teaching example of on-device speech classification: a Raspberry Pi "
        "lights an LED for the voice it hears. Not intended for surveillance, access control, profiling or "
        "any decision about an individual. No audio is stored or sent anywhere by the device.",
        "",
        "## Model",
        f"- Depthwise-separable CNN on MFCCs: {m['params']} parameters, {m['bytes']} bytes as a full-integer "
        f"int8 TFLite file, {m['macs'] / 1e6:.2f} M multiply-accumulates per window.",
        f"- Input: {meta['window_frames']} frames ({m['window_seconds']:.2f} s) of {fe['n_mfcc']} MFCCs from "
        f"{fe['n_mels']} mel bands {fe['fmin']:g}-{fe['fmax']:g} Hz, standardised per coefficient. The "
        f"device slides it every {m['hop_seconds']:.2f} s and averages log-odds over the speech of an "
        "utterance.",
        f'- Output: log-odds of "female". Decision: {band_text(th)}, otherwise "uncertain".',
        "",
        "## Training data",
        "",
    ]
    if td.get("sets"):
        lines += [*training_table(td), ""]
    elif td:
        lines += [
            f"{td.get('clips', '?')} clips{hours}, {td.get('speakers_female', '?')} female and "
            f"{td.get('speakers_male', '?')} male speakers from: "
            + ", ".join(f"{s['corpus']} ({s['licence']})" for s in sets)
            + ".",
            "",
        ]
    if td.get("sets"):
        lines += [
            f"{td['clips']} clips{hours} from {td['speakers_female']} women and {td['speakers_male']} men"
            + (f" in {len(languages)} languages named by the corpora" if languages else "")
            + f", {len(sets)} corpora (their training split; licences as recorded by the run).",
            "",
        ]
    lines += augmentation_lines(meta, td)
    attributions = attribution_lines(td)
    if attributions:
        lines += ["", "Attribution, for the corpora above whose licences ask for it:", "", *attributions]
    lines += ["", "Not trained on:", "", *not_trained_on(results), ""]

    lines += [
        f"## Evaluation (details in [`{rel}`]({rel}))",
        "",
        "The int8 file as shipped, each clip decided whole through the device pipeline at its band "
        f"({band_text(th)}); the peer beside it on the same files. {PROVENANCE}",
        "",
        *summary_table(results),
        "",
        *macro_lines(results),
        "",
    ]
    small = small_sets_note(results)
    if small:
        lines += [small, ""]
    for note in peer_notes(results):
        lines += [note, ""]
    lines += [*metric_definitions(th), ""]
    lines += ["### Goals", "", *goal_lines(results), ""]
    lines += [
        "### Accuracy against seconds of speech",
        "",
        "Clips cut after their first seconds of speech and decided again (right / uncertain / wrong; reach: "
        "the share of a set's clips with that much speech):",
        "",
        *speech_table(results),
        "",
    ]
    if results.get("loco"):
        lines += [
            "### Leave-one-corpus-out",
            "",
            "A model trained without each family of training corpora, tested on all of that family's clips; "
            "on the family's test-split clips beside the peer:",
            "",
            *loco_table(results),
            "",
        ]
    lines += ["### Children", "", *children_lines(results), ""]
    lines += [
        "### Voices with an unusual F0 for their label",
        "",
        "Speakers the corpora's `qa_f0.csv` flags (a sanity check; labels were not changed from it):",
        "",
        *f0_lines(results),
        "",
    ]
    lines += ["### The original system's approach, for comparison", "", *_baseline_lines(results), ""]
    crossval = _crossval_section(report, meta, path.parent)
    if crossval:
        lines += [crossval.rstrip(), ""]
    lines += ["## Known limits", "", *_limits(results, languages, sets), ""]
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def _baseline_lines(results: dict[str, Any]) -> list[str]:
    base = (results.get("baseline") or {}).get("variants") or {}
    if not base:
        return ["The original system's baseline was not run for this model."]
    names = list(next(iter(base.values())))
    rows = [[name, *(pct(v.get(name)) for v in base.values())] for name in names]
    return [baseline_description(), "", *table(["evaluated on", *base], rows)]


def _limits(results: dict[str, Any], languages: list[str], sets: list[dict[str, Any]]) -> list[str]:
    corpora = ", ".join(s["corpus"] for s in sets) or "the corpora above"
    few = [
        f"{name} ({by['int8']['speakers_female']}/{by['int8']['speakers_male']} speakers F/M)"
        for name, by in results["sets"].items()
        if by["int8"]["speakers_female"] + by["int8"]["speakers_male"] < 20
    ]
    named = f" ({len(languages)} languages named by them)" if languages else ""
    weak, n_weak = weak_groups(results)
    if not weak:
        weak_text = ": none"
    else:
        shown = f", the {len(weak)} weakest of {n_weak}" if n_weak > len(weak) else ""
        weak_text = f"{shown}: " + "; ".join(weak)
    lines = [
        f"- What it has heard is its training corpora{named}: {corpora}, with their voices, rooms and "
        "microphones, plus simulated noise, reverberation and microphone responses. Voices and recordings "
        "unlike these may do worse; the evaluation-only sets above measure some of that.",
        "- Very low female voices and very high male voices are the expected errors, and so are voices "
        "altered by illness, whispering, singing or shouting. Groups of at least 10 clips with fewer than "
        f"85% right (right / uncertain / wrong){weak_text}.",
    ]
    if few:
        lines.append(
            "- Sets with fewer than 20 speakers, whose figures rest on few voices and are uncertain by more "
            f"than their intervals say: {'; '.join(few)}."
        )
    lines.append("- Two voices at once give an average of both.")
    return lines


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

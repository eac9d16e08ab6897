"""Write the evaluation report: Markdown tables plus PNG plots, from the metrics JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MIN_TABLE_CLIPS = 20
"""Sets with fewer clips stay out of the summary tables and plots: even all right, their 95% interval
on the right share is wider than 15 points (4 of 4 right: 51-100%). They keep their own section."""
MIN_REACH = 0.8
"""A speech length is shown for a set only when at least this share of its clips is that long."""


def pct(v: float | None) -> str:
    """A share as a percentage with one decimal; '–' when there is none."""
    return "–" if v is None else f"{100 * v:.1f}%"


def ruw(t: dict[str, Any] | None) -> str:
    """A three-way result as 'right / uncertain / wrong' percentages."""
    if not t or not t.get("n"):
        return "–"
    return f"{pct(t['right'])} / {pct(t['uncertain'])} / {pct(t['wrong'])}"


def interval(ci: list[float]) -> str:
    return f"{100 * ci[0]:.1f}-{100 * ci[1]:.1f}%"


def band_text(th: dict[str, float]) -> str:
    return f"male if p_female <= {th['male_below']:g}, female if >= {th['female_above']:g}"


def large_sets(results: dict[str, Any]) -> dict[str, Any]:
    return {n: by for n, by in results["sets"].items() if by["int8"]["clips"] >= MIN_TABLE_CLIPS}


def small_sets_note(results: dict[str, Any]) -> str:
    """One sentence naming the sets left out of the tables, with their right share and interval."""
    small = [
        f"{name} ({q['band']['n']} clips, {q['band']['right_n']} right, 95% interval "
        f"{interval(q['band']['right_ci95'])})"
        for name, by in results["sets"].items()
        if (q := by["int8"])["clips"] < MIN_TABLE_CLIPS
    ]
    if not small:
        return ""
    return (
        f"Left out of the tables as too small to mean much (fewer than {MIN_TABLE_CLIPS} clips): "
        + "; ".join(small)
        + "."
    )


def shown_durations(m: dict[str, Any]) -> list[str]:
    return [d for d, v in m["by_duration"].items() if v["reach"] >= MIN_REACH and v.get("n")]


def _plots(results: dict[str, Any], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    sets = large_sets(results)
    th = results["model"]["thresholds"]
    # Clips right at the shipped band vs seconds of speech, at the lengths each set's clips reach.
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (set_name, by_model) in enumerate(sets.items()):
        colour = f"C{i}"
        for model_name, style in (("int8", "-"), ("float", "--")):
            m = by_model[model_name]
            ds = shown_durations(m)
            if not ds:
                continue
            ax.plot(
                [float(d) for d in ds],
                [100 * m["by_duration"][d]["right"] for d in ds],
                style,
                color=colour,
                marker="o",
                label=f"{set_name} ({model_name})",
            )
    ax.set_xlabel("seconds of audio from speech onset")
    ax.set_ylabel("clips right (%)")
    ax.set_title(f"Clips right at the shipped band ({band_text(th)})", fontsize=9)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy_vs_speech.png", dpi=110)
    plt.close(fig)
    names.append("accuracy_vs_speech.png")
    # Reliability diagram (int8).
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1)
    for set_name, by_model in sets.items():
        cal = by_model["int8"]["calibration"]
        ax.plot([c["p_mean"] for c in cal], [c["female_share"] for c in cal], marker="o", label=set_name)
    ax.set_xlabel("predicted p(female), per clip")
    ax.set_ylabel("share of clips that are female")
    ax.set_title("Calibration (int8)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "calibration.png", dpi=110)
    plt.close(fig)
    names.append("calibration.png")
    return names


def summary_table(results: dict[str, Any]) -> list[str]:
    """The headline table (report and model card): int8 at the shipped band first, then the rest."""
    lines = [
        "| set | speakers F/M | clips | right / uncertain / wrong | right, 95% interval "
        "| balanced accuracy at p = 0.5, int8 (float) | 1 s windows, balanced accuracy at p = 0.5 "
        "| speakers right (majority of clips) | clip AUC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by in large_sets(results).items():
        q, f = by["int8"], by["float"]
        spk = q["speakers"]
        auc = "–" if q["clip_auc"] is None else f"{q['clip_auc']:.3f}"
        lines.append(
            f"| {name} | {q['speakers_female']}/{q['speakers_male']} | {q['clips']} | {ruw(q['band'])} | "
            f"{interval(q['band']['right_ci95'])} | {pct(q['clip_balanced_accuracy'])} "
            f"({pct(f['clip_balanced_accuracy'])}) | {pct(q['window_balanced_accuracy'])} | "
            f"{spk['right_n']}/{spk['n']} | {auc} |"
        )
    return lines


def metric_definitions(th: dict[str, float]) -> list[str]:
    return [
        "- **right / uncertain / wrong**: shares of clips whose decision at the shipped band "
        f'({band_text(th)}, uncertain in between) is the true label, "uncertain", or the other '
        "label. A clip's p_female is the sigmoid of the mean log-odds of its voiced 1 s windows, as "
        "the device decides an utterance; this is what the LEDs would show.",
        "- **right, 95% interval**: Wilson score interval of the right share, counting clips as independent. "
        "Clips of one speaker are not independent, so where a set has few speakers (EmoDB: 10) the real "
        "uncertainty is larger; the speakers column shows how few voices stand behind a figure.",
        "- **balanced accuracy at p = 0.5**: every clip forced to a side at p_female = 0.5 (no uncertain "
        "band), then the mean of the share of women called female and the share of men called male.",
        "- **1 s windows**: the same for single voiced 1 s windows, i.e. what one window on its own says.",
        "- **speakers right**: speakers more than half of whose clips are on the right side of p = 0.5.",
        "- **clip AUC**: the probability that a random woman's clip gets a higher p_female than a random "
        "man's (1 = the clips can be separated by some threshold, 0.5 = chance).",
    ]


def write_report(results: dict[str, Any], out_dir: Path) -> Path:
    """``results``: {"model": {...}, "sets": {name: {"float": metrics, "int8": metrics}}, "baseline",
    "training", "timings", "command"}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    plots = _plots(results, out_dir)
    info = results["model"]
    th = info["thresholds"]
    big = large_sets(results)
    sha = f", sha256 {info['sha256'][:12]}…" if info.get("sha256") else ""
    lines = [
        "# voicegender evaluation report",
        "",
        f"Model: `{info['file']}` ({info['bytes']} bytes int8{sha}, {info['macs'] / 1e6:.2f} M MACs per "
        f"{info['window_seconds']:.2f} s window, {info['params']} parameters), scored through the device "
        f'runtime ({info["runtime"]}); "float" is the Keras model it was exported from. Decision band: '
        f"{band_text(th)}, uncertain in between. Written by `{results.get('command', 'voicegender-train')}`.",
        "",
        "All test speakers are disjoint from training speakers; EmoDB (German, acted emotions) is never "
        "used for training. The test sets did guide a few design choices (which augmentations to keep), "
        "so their figures are slightly optimistic.",
        "",
        "## What the figures mean",
        "",
        *metric_definitions(th),
        "",
        "## Summary (int8, the shipped file)",
        "",
        *summary_table(results),
        "",
    ]
    note = small_sets_note(results)
    if note:
        lines += [note, ""]
    lines += [
        "## By gender (int8, at the shipped band)",
        "",
        "| set | women's clips | women: right / uncertain / wrong | men's clips "
        "| men: right / uncertain / wrong |",
        "|---|---|---|---|---|",
    ]
    for name, by in big.items():
        g = by["int8"]["band_by_gender"]
        f, m = g.get("female", {}), g.get("male", {})
        lines.append(f"| {name} | {f.get('n', 0)} | {ruw(f)} | {m.get('n', 0)} | {ruw(m)} |")
    lines.append("")
    lines += _band_section(big, th)
    lines += _attribute_sections(big)
    lines += _duration_section(big, plots[0])
    for set_name, by_model in results["sets"].items():
        lines += _set_section(set_name, by_model["int8"])
    lines += ["## Calibration", "", f"![calibration]({plots[1]})", ""]
    lines += _baseline_section(results.get("baseline"))
    lines += _training_section(results.get("training"))
    lines += _timings_section(results.get("timings"))
    path = out_dir / "REPORT.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def _band_section(sets: dict[str, Any], th: dict[str, float]) -> list[str]:
    if not sets:
        return []
    lines = [
        "## The uncertain band: what a wider or narrower one does (int8)",
        "",
        "Right / uncertain / wrong for other bands (`[decision] male_below / female_above` in the "
        "device config); 0.5 / 0.5 forces every clip to a side.",
        "",
        "| band (male <= / female >=) | " + " | ".join(sets) + " |",
        "|---|" + "---|" * len(sets),
    ]
    sweeps = [by["int8"]["band_sweep"] for by in sets.values()]
    for i, row in enumerate(sweeps[0]):
        lo, hi = row["male_below"], row["female_above"]
        shipped = " (shipped)" if (lo, hi) == (th["male_below"], th["female_above"]) else ""
        lines.append(f"| {lo:g} / {hi:g}{shipped} | " + " | ".join(ruw(s[i]) for s in sweeps) + " |")
    lines += [
        "",
        "The best single threshold, chosen on the very clips it is measured on (so an upper bound, not "
        "an estimate): "
        + "; ".join(
            f"{name}: p_female >= {by['int8']['best_threshold']['p_female']:.2f} gives balanced accuracy "
            f"{pct(by['int8']['best_threshold']['balanced_accuracy'])}"
            for name, by in sets.items()
        )
        + ".",
        "",
    ]
    return lines


def _attribute_sections(sets: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for set_name, by_model in sets.items():
        for attribute, groups in by_model["int8"]["by_attribute"].items():
            lines += [
                f"## {set_name} by {attribute} (int8, at the shipped band)",
                "",
                f"| {attribute} | women's clips | women: right / uncertain / wrong | men's clips "
                "| men: right / uncertain / wrong |",
                "|---|---|---|---|---|",
            ]
            for value, g in groups.items():
                f, m = g.get("female", {}), g.get("male", {})
                lines.append(f"| {value} | {f.get('n', 0)} | {ruw(f)} | {m.get('n', 0)} | {ruw(m)} |")
            lines.append("")
    return lines


def _duration_section(sets: dict[str, Any], plot: str) -> list[str]:
    durations = sorted({d for by in sets.values() for d in shown_durations(by["int8"])}, key=float)
    lines = [
        "## Accuracy vs amount of speech (int8, at the shipped band)",
        "",
        "Each clip scored again on only the first seconds of audio from its speech onset (windows every "
        "0.25 s over that stretch, none skipped). A length is shown for a set only where at least "
        f"{100 * MIN_REACH:.0f}% of its clips are that long after their onset; the cell scores those clips. "
        "Cells: right / uncertain / wrong.",
        "",
        "| set | " + " | ".join(f"{float(d):g} s" for d in durations) + " | whole clip (median length) |",
        "|---|" + "---|" * (len(durations) + 1),
    ]
    for set_name, by_model in sets.items():
        q = by_model["int8"]
        ds = set(shown_durations(q))
        cells = [ruw(q["by_duration"][d]) if d in ds else "–" for d in durations]
        median = q.get("median_clip_seconds")
        whole = ruw(q["band"]) + (f" ({median:.1f} s)" if median is not None else "")
        lines.append(f"| {set_name} | " + " | ".join(cells) + f" | {whole} |")
    return [*lines, "", f"![clips right vs seconds of speech]({plot})", ""]


def _set_section(set_name: str, q: dict[str, Any]) -> list[str]:
    c = q["confusion"]
    spk = q["speakers"]
    auc = "–" if q["clip_auc"] is None else f"{q['clip_auc']:.3f}"
    return [
        f"## {set_name} (int8)",
        "",
        f"{q['clips']} clips from {q['speakers_female']} women and {q['speakers_male']} men; right / "
        f"uncertain / wrong {ruw(q['band'])} (right: {q['band']['right_n']} of {q['band']['n']}, "
        f"95% interval {interval(q['band']['right_ci95'])}). Decisions at the band (rows: truth):",
        "",
        "| | called male | called female | uncertain |",
        "|---|---|---|---|",
        f"| men | {c['male']['male']} | {c['male']['female']} | {c['male']['uncertain']} |",
        f"| women | {c['female']['male']} | {c['female']['female']} | {c['female']['uncertain']} |",
        "",
        f"Of the clips that got a decision, {pct(q['decided_accuracy'])} were right. Balanced accuracy "
        f"at p = 0.5: clips {pct(q['clip_balanced_accuracy'])}, 1 s windows "
        f"{pct(q['window_balanced_accuracy'])} ({q['windows']} windows); clip AUC {auc}; expected "
        f"calibration error {q['ece']:.3f}. Speakers right (majority of clips at p = 0.5): "
        f"{spk['right_n']} of {spk['n']} (95% interval "
        f"{interval(spk['right_ci95'])}); on the wrong side: {', '.join(spk['wrong']) or 'none'}.",
        "",
        "Speakers with clips on the wrong side of p = 0.5 (share of their clips right; the five worst): "
        + (
            ", ".join(
                f"{s} ({'F' if v['female'] else 'M'}) {pct(v['accuracy'])} of {v['clips']}"
                for s, v in q["worst_speakers"]
            )
            or "none"
        ),
        "",
    ]


def weak_groups(results: dict[str, Any], below: float = 0.85) -> list[str]:
    """Groups (e.g. an emotion, by gender) of at least 10 clips with fewer than ``below`` right."""
    out = []
    for set_name, by in large_sets(results).items():
        for attribute, groups in by["int8"]["by_attribute"].items():
            for value, g in groups.items():
                for gender, who in (("female", "women"), ("male", "men")):
                    t = g.get(gender)
                    if t and t["n"] >= 10 and t["right"] < below:
                        out.append(f"{set_name}, {attribute} {value}, {who}: {ruw(t)} ({t['n']} clips)")
    return out


def baseline_description() -> str:
    return (
        "A dense network (256-256-128-128-64) on 128-bin mel-mean vectors (librosa power mel spectrogram "
        "at 22.05 kHz, averaged over time), trained on the original 66,938 Kaggle Common Voice clips with "
        "a random 81/9/10 clip split (not by speaker), as the original system did. The original code fed "
        "the raw power means; converting them to dB and standardising them is what reproduces the "
        "original's ~96% claim, so both inputs are shown. Balanced accuracy at p = 0.5."
    )


def _baseline_section(base: dict[str, Any] | None) -> list[str]:
    if not base:
        return []
    variants = base["variants"]
    names = list(next(iter(variants.values())))
    lines = [
        "## Baseline: the original system's approach",
        "",
        baseline_description(),
        "",
        "| evaluated on | " + " | ".join(variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(pct(v.get(name)) for v in variants.values()) + " |")
    return [*lines, ""]


def _training_section(train: dict[str, Any] | None) -> list[str]:
    if not train:
        return []
    lines = [
        "## Training",
        "",
        f"{train['clips']} clips, {train['hours']} h, {train['speakers_female']} female and "
        f"{train['speakers_male']} male speakers from {', '.join(train['corpora'])}, each clip also in "
        f"{train['augmented_copies']} augmented copies.",
        "",
    ]
    hist = train.get("history")
    if hist and hist.get("acc"):
        lines += [
            "Accuracy per epoch, as recorded when the model was trained (windows at p = 0.5; training "
            "windows include the augmented copies):",
            "",
            "| epoch | training windows | validation windows (clean) |",
            "|---|---|---|",
        ]
        val = hist.get("val_acc", [])
        for i, acc in enumerate(hist["acc"]):
            lines.append(f"| {i + 1} | {pct(acc)} | {pct(val[i]) if i < len(val) else '–'} |")
        lines.append("")
    return lines


def _timings_section(timings: list[dict[str, Any]] | None) -> list[str]:
    if not timings:
        return []
    lines = ["## Run time of the command that wrote this report", "", "| stage | minutes | |"]
    lines.append("|---|---:|---|")
    for t in timings:
        lines.append(f"| {t['stage']} | {t['minutes']:.2f} | {t.get('note', '')} |")
    return [*lines, ""]

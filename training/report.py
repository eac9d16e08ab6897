"""Write the evaluation report: Markdown tables plus PNG plots, from the metrics JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def pct(v: float | None) -> str:
    """A share as a percentage with one decimal; '–' when there is none."""
    return "–" if v is None else f"{100 * v:.1f}%"


def _plots(results: dict[str, Any], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    sets = results["sets"]
    # Accuracy vs seconds of speech, float and int8, one line per set.
    fig, ax = plt.subplots(figsize=(6, 4))
    for set_name, by_model in sets.items():
        for model_name, style in (("float", "--"), ("int8", "-")):
            m = by_model.get(model_name)
            if not m:
                continue
            d = sorted(m["by_duration"].items(), key=lambda kv: float(kv[0]))
            ax.plot(
                [float(k) for k, _ in d],
                [100 * v for _, v in d],
                style,
                marker="o",
                label=f"{set_name} ({model_name})",
            )
    ax.set_xlabel("seconds of speech")
    ax.set_ylabel("balanced accuracy (%)")
    ax.set_title("Accuracy vs amount of speech")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy_vs_speech.png", dpi=110)
    plt.close(fig)
    names.append("accuracy_vs_speech.png")
    # Reliability diagram (int8).
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1)
    for set_name, by_model in sets.items():
        cal = by_model.get("int8", {}).get("calibration", [])
        if cal:
            ax.plot([c["p_mean"] for c in cal], [c["female_share"] for c in cal], marker="o", label=set_name)
    ax.set_xlabel("predicted p(female), per clip")
    ax.set_ylabel("share of clips that are female")
    ax.set_title("Calibration (int8)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "calibration.png", dpi=110)
    plt.close(fig)
    names.append("calibration.png")
    return names


def write_report(results: dict[str, Any], out_dir: Path) -> Path:
    """``results``: {"model": {...}, "sets": {name: {"float": metrics, "int8": metrics}}, "baseline": ...}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    plots = _plots(results, out_dir)
    info = results["model"]
    th = info["thresholds"]
    lines = [
        "# voicegender evaluation report",
        "",
        f"Model: `{info['file']}` ({info['bytes']} bytes int8, {info['macs'] / 1e6:.2f} M MACs per "
        f"{info['window_seconds']:.2f} s window, {info['params']} parameters). "
        f"Thresholds: male if p_female <= {th['male_below']}, female if >= {th['female_above']}, "
        "uncertain in between.",
        "",
        "All test speakers are disjoint from training speakers; EmoDB (German, acted emotions) is never "
        "used for training. The test sets did guide a few design choices (which augmentations to keep), "
        "so their figures are slightly optimistic; the project README lists those choices.",
        "",
        "## Summary (balanced accuracy)",
        "",
        "| set | speakers F/M | clips | windows (float / int8) | clips (float / int8) | uncertain (int8) |",
        "|---|---|---|---|---|---|",
    ]
    for set_name, by_model in results["sets"].items():
        f, q = by_model["float"], by_model["int8"]
        lines.append(
            f"| {set_name} | {q['speakers_female']}/{q['speakers_male']} | {q['clips']} | "
            f"{pct(f['window_balanced_accuracy'])} / {pct(q['window_balanced_accuracy'])} | "
            f"{pct(f['clip_balanced_accuracy'])} / {pct(q['clip_balanced_accuracy'])} | "
            f"{pct(q['uncertain_share'])} |"
        )
    lines += ["", "## Accuracy vs amount of speech (int8, balanced accuracy)", ""]
    durations = sorted({k for by in results["sets"].values() for k in by["int8"]["by_duration"]}, key=float)
    lines.append("| set | " + " | ".join(f"{float(d):g} s" for d in durations) + " |")
    lines.append("|---" * (len(durations) + 1) + "|")
    for set_name, by_model in results["sets"].items():
        bd = by_model["int8"]["by_duration"]
        lines.append(f"| {set_name} | " + " | ".join(pct(bd.get(d)) for d in durations) + " |")
    lines += ["", f"![accuracy vs speech]({plots[0]})", ""]
    for set_name, by_model in results["sets"].items():
        q = by_model["int8"]
        c = q["confusion"]
        lines += [
            f"## {set_name} (int8)",
            "",
            "Confusion matrix at the thresholds (rows: truth):",
            "",
            "| | male | female | uncertain |",
            "|---|---|---|---|",
            f"| male | {c['male']['male']} | {c['male']['female']} | {c['male']['uncertain']} |",
            f"| female | {c['female']['male']} | {c['female']['female']} | {c['female']['uncertain']} |",
            "",
            f"Accuracy of the clips that got a decision: {pct(q['decided_accuracy'])}; "
            f"expected calibration error {q['ece']:.3f}.",
            "",
            "Speakers with errors (clip accuracy, worst first): "
            + (
                ", ".join(
                    f"{s} ({'F' if v['female'] else 'M'}) {pct(v['accuracy'])} of {v['clips']}"
                    for s, v in q["worst_speakers"]
                )
                or "none"
            ),
            "",
        ]
    lines += ["## Calibration", "", f"![calibration]({plots[1]})", ""]
    base = results.get("baseline")
    if base:
        lines += [
            "## Baseline: the original system's approach",
            "",
            "A dense network on 128-bin mel-mean vectors (librosa power mel, 22.05 kHz), trained on the "
            "original 66,938 Kaggle Common Voice clips with a random clip split, as the original system did.",
            "",
            "| evaluated on | balanced accuracy |",
            "|---|---|",
        ]
        for name, value in base["scores"].items():
            lines.append(f"| {name} | {pct(value)} |")
        if base.get("note"):
            lines += ["", base["note"]]
        lines.append("")
    train = results.get("training")
    if train:
        lines += [
            "## Training",
            "",
            f"{train['clips']} clips, {train['hours']} h, {train['speakers_female']} female and "
            f"{train['speakers_male']} male speakers from {', '.join(train['corpora'])}, each clip also in "
            f"{train['augmented_copies']} augmented copies. Minutes: {train['minutes']}.",
            "",
            "| epoch | train accuracy | validation accuracy (clean windows) |",
            "|---|---|---|",
        ]
        hist = train["history"]
        for i, acc in enumerate(hist.get("acc", [])):
            val = hist.get("val_acc", [])
            lines.append(f"| {i + 1} | {pct(acc)} | {pct(val[i]) if i < len(val) else '–'} |")
        lines.append("")
    path = out_dir / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path

"""The model card quotes cross-validation figures only when they were measured for the model's recipe."""

from __future__ import annotations

import json

from voicegender_training.modelcard import _crossval_section


def _crossval(settings: dict) -> dict:
    held_out = {
        "clips": 448, "speakers_female": 130, "speakers_male": 131, "clip_balanced_accuracy": 0.961,
        "window_balanced_accuracy": 0.932, "uncertain_share": 0.04,
    }  # fmt: skip
    spread = {"mean": 0.92, "sd": 0.015, "min": 0.9, "max": 0.94}
    return {
        "k": 5,
        "settings": settings,
        "pooled_held_out": {"all": held_out, "librispeech": held_out | {"clips": 263}},
        "sets": {"EmoDB": {"clip_balanced_accuracy": spread}},
    }


def test_card_quotes_crossval_for_the_same_recipe(tmp_path):
    report = tmp_path / "report" / "REPORT.md"
    report.parent.mkdir()
    settings = {"train": {"seed": 1, "epochs": 8}}
    (report.parent / "crossval.json").write_text(json.dumps(_crossval(settings)))
    text = _crossval_section(report, {"settings": settings}, tmp_path)
    assert "(report/crossval.md)" in text and "5 speaker-disjoint folds" in text
    assert (
        "all held-out speakers: 448 clips, 130/131 speakers F/M: balanced accuracy at p = 0.5 of clips "
        "96.1%, of 1 s windows 93.2%; uncertain 4.0%"
    ) in text
    assert "librispeech: 263 clips" in text
    assert (
        "EmoDB, scored by each fold's model: balanced accuracy of clips at p = 0.5 92.0% ± 1.5 (range "
        in text
    )


def test_card_leaves_out_crossval_of_another_recipe_or_none(tmp_path):
    report = tmp_path / "REPORT.md"
    assert _crossval_section(report, {"settings": {}}, tmp_path) == ""
    (tmp_path / "crossval.json").write_text(json.dumps(_crossval({"train": {"seed": 2}})))
    assert _crossval_section(report, {"settings": {"train": {"seed": 1}}}, tmp_path) == ""
    (tmp_path / "crossval.json").write_text("{not json")
    assert _crossval_section(report, {"settings": {}}, tmp_path) == ""


# --- The figures themselves: evaluate.metrics and the report built from them -------------------------


def _scores(p_female: list[float], female: list[bool], speakers: list[str] | None = None, **extra):
    """ClipScores whose clips have one window each with the given p_female."""
    import numpy as np

    from voicegender_training.evaluate import ClipScores, EvalClip

    logits = [np.array([np.log(p / (1 - p))]) for p in p_female]
    speakers = speakers or [f"s{i}" for i in range(len(p_female))]
    attributes = extra.get("attributes") or [()] * len(p_female)
    clips = [
        EvalClip(np.zeros(16000), f, s, f"c{i}", a)
        for i, (f, s, a) in enumerate(zip(female, speakers, attributes, strict=True))
    ]
    return ClipScores(clips, logits, extra.get("by_duration", {}), np.full(len(clips), 2.0))


def test_metrics_count_right_uncertain_and_wrong_at_the_band():
    from voicegender.model import Thresholds
    from voicegender_training.evaluate import metrics

    # Women: right, uncertain, wrong; men: right, right, uncertain.
    scores = _scores([0.9, 0.5, 0.2, 0.1, 0.3, 0.6], [True, True, True, False, False, False])
    m = metrics(scores, Thresholds(0.35, 0.65))
    assert (m["band"]["right_n"], m["band"]["uncertain_n"], m["band"]["wrong_n"]) == (3, 2, 1)
    assert m["band"]["right"] == 0.5 and m["uncertain_share"] == m["band"]["uncertain"] == 2 / 6
    assert (m["band_by_gender"]["female"]["right_n"], m["band_by_gender"]["female"]["wrong_n"]) == (1, 1)
    assert (m["band_by_gender"]["male"]["right_n"], m["band_by_gender"]["male"]["uncertain_n"]) == (2, 1)
    # At p = 0.5 (no band): women 0.9 right, 0.5 -> logit 0 counts male, 0.2 wrong; men all right but 0.6.
    assert m["clip_balanced_accuracy"] == (1 / 3 + 2 / 3) / 2
    sweep = {(b["male_below"], b["female_above"]): b for b in m["band_sweep"]}
    assert sweep[(0.5, 0.5)]["uncertain_n"] == 0  # 0.5 / 0.5 decides every clip (p = 0.5 is female)
    assert sweep[(0.25, 0.75)]["uncertain_n"] == 3  # 0.5, 0.3 and 0.6


def test_wilson_interval_and_auc_match_hand_values():
    from voicegender_training.evaluate import roc_auc, wilson_interval

    lo, hi = wilson_interval(4, 4)
    assert (round(lo, 3), round(hi, 6)) == (0.510, 1.0)  # 4 of 4 right says little
    lo, hi = wilson_interval(472, 535)
    assert round(lo, 3) == 0.852 and round(hi, 3) == 0.907  # worked by hand
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # 2 women x 2 men: pairs (0.9>0.1, 0.9>0.4, 0.3>0.1, 0.3<0.4) -> 3 of 4.
    assert roc_auc([True, True, False, False], [0.9, 0.3, 0.1, 0.4]) == 0.75
    assert roc_auc([True, True], [0.9, 0.3]) is None


def test_metrics_break_down_by_attribute_and_speaker():
    from voicegender.model import Thresholds
    from voicegender_training.evaluate import metrics

    scores = _scores(
        [0.9, 0.2, 0.1, 0.8, 0.7],
        [True, True, False, False, True],
        speakers=["w1", "w1", "m1", "m1", "w2"],
        attributes=[(("emotion", "anger"),), (("emotion", "sadness"),), (("emotion", "anger"),), (), ()],
    )
    m = metrics(scores, Thresholds())
    emotion = m["by_attribute"]["emotion"]
    assert set(emotion) == {"anger", "sadness"}  # clips without the attribute are in no group
    assert emotion["anger"]["all"]["n"] == 2 and emotion["anger"]["female"]["right_n"] == 1
    assert emotion["sadness"]["female"]["wrong_n"] == 1 and "male" not in emotion["sadness"]
    # w1: 1 of 2 right (not a majority), m1: 1 of 2, w2: 1 of 1.
    assert m["speakers"]["right_n"] == 1 and m["speakers"]["n"] == 3 and m["speakers"]["wrong"] == []


def test_durations_a_set_does_not_reach_are_not_reported():
    import numpy as np

    from voicegender.model import Thresholds
    from voicegender_training.evaluate import metrics
    from voicegender_training.report import shown_durations

    by_duration = {
        1.0: np.array([2.0, -2.0, 2.0, -2.0]),
        2.0: np.array([2.0, np.nan, np.nan, -2.0]),  # two of four clips are long enough
        5.0: np.full(4, np.nan),
    }
    scores = _scores([0.9, 0.1, 0.9, 0.1], [True, False, True, False], by_duration=by_duration)
    m = metrics(scores, Thresholds())
    assert m["by_duration"]["2.0"]["reach"] == 0.5 and m["by_duration"]["2.0"]["n"] == 2
    assert m["by_duration"]["5.0"] == {"reach": 0.0, "clips": 0}
    assert shown_durations(m) == ["1.0"]


def _results(n_clips: dict[str, int]) -> dict:
    from voicegender.model import Thresholds
    from voicegender_training.evaluate import metrics

    sets = {}
    for name, n in n_clips.items():
        female = [i % 2 == 0 for i in range(n)]
        m = metrics(_scores([0.8 if f else 0.2 for f in female], female), Thresholds())
        sets[name] = {"int8": m, "float": m}
    model = {
        "file": "m.tflite", "sha256": "ab" * 32, "bytes": 1000, "params": 10, "macs": 2e6,
        "window_seconds": 0.99, "hop_seconds": 0.25, "runtime": "test",
        "thresholds": {"male_below": 0.35, "female_above": 0.65},
    }  # fmt: skip
    timings = [{"stage": "read and decode audio", "minutes": 0.5, "note": ""}]
    return {"command": "voicegender-train evaluate", "sets": sets, "model": model, "timings": timings}


def test_report_names_its_figures_and_leaves_small_sets_out_of_the_tables(tmp_path):
    from voicegender_training.report import write_report

    path = write_report(_results({"big set": 40, "tiny set": 4}), tmp_path)
    text = path.read_text()
    summary = text.split("## Summary")[1].split("\n## ")[0]
    assert "| big set | 20/20 | 40 | 100.0% / 0.0% / 0.0% | 91.2-100.0% |" in summary
    assert "| tiny set |" not in summary
    assert "tiny set (4 clips, 4 right, 95% interval 51.0-100.0%)" in summary
    assert "## tiny set (int8)" in text  # its own section stays
    assert "| read and decode audio | 0.50 |" in text and "{'" not in text
    assert (tmp_path / "accuracy_vs_speech.png").stat().st_size > 0


def test_model_card_shows_the_three_way_figures_and_the_goals(tmp_path):
    from voicegender_training.modelcard import write_model_card

    results = _results({"held-out speakers (test split)": 40})
    meta = {
        "training_data": {
            "clips": 10,
            "hours": 0.1,
            "speakers_female": 3,
            "speakers_male": 3,
            "licences": {},
            "augmented_copies": 3,
        },
        "frontend": {"n_mfcc": 40, "n_mels": 40, "fmin": 60.0, "fmax": 8000.0},
        "thresholds": {"male_below": 0.35, "female_above": 0.65},
        "settings": {"augment": {"p_f0": 0.5, "male_f0_semitones": [0, 8], "female_f0_semitones": [-5, 0]}},
        "window_frames": 98,
    }
    card = write_model_card(
        tmp_path / "MODEL_CARD.md", results, meta, tmp_path / "report" / "REPORT.md"
    ).read_text()
    assert "| held-out speakers (test split) | 20/20 | 40 | 100.0% / 0.0% / 0.0% |" in card
    assert "balanced accuracy at p = 0.5 >= 99.0%: 100.0%, met; at most 5.0% uncertain: 0.0%, met" in card
    assert "not run for this model" in card  # no baseline in these results

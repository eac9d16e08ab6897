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
    assert "all held-out speakers: 448 clips, 130/131 speakers F/M: clips 96.1%" in text
    assert "librispeech: 263 clips" in text
    assert "EmoDB, scored by each fold's model: clips 92.0% ± 1.5 (range 90.0%-94.0%)" in text


def test_card_leaves_out_crossval_of_another_recipe_or_none(tmp_path):
    report = tmp_path / "REPORT.md"
    assert _crossval_section(report, {"settings": {}}, tmp_path) == ""
    (tmp_path / "crossval.json").write_text(json.dumps(_crossval({"train": {"seed": 2}})))
    assert _crossval_section(report, {"settings": {"train": {"seed": 1}}}, tmp_path) == ""
    (tmp_path / "crossval.json").write_text("{not json")
    assert _crossval_section(report, {"settings": {}}, tmp_path) == ""

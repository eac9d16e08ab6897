"""A tiny end-to-end training run: every reader, a few steps, int8 export, device runtime agreement."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from voicegender.frontend import Frontend
from voicegender.model import load_model, sliding_windows
from voicegender.wavio import read_wav
from voicegender_training.cli import main as train_main


def _small_librispeech(data_dir: Path, dest: Path, per_gender: int = 4) -> Path:
    """A LibriSpeech-layout copy (symlinks) with a few speakers of each gender."""
    src = data_dir / "LibriSpeech"
    wanted: dict[str, list[str]] = {"F": [], "M": []}
    lines = []
    for line in (src / "SPEAKERS.TXT").read_text().splitlines():
        parts = [p.strip() for p in line.split("|")]
        if line.startswith(";") or len(parts) < 3:
            continue
        sid, sex, subset = parts[0], parts[1], parts[2]
        if len(wanted[sex]) < per_gender and (src / subset / sid).is_dir():
            wanted[sex].append(sid)
            lines.append(line)
            (dest / subset).mkdir(parents=True, exist_ok=True)
            (dest / subset / sid).symlink_to(src / subset / sid)
    (dest / "SPEAKERS.TXT").write_text("\n".join(lines) + "\n")
    return dest


@pytest.mark.slow
def test_tiny_training_run_exports_an_int8_model_the_device_agrees_with(data_dir, tmp_path, fixtures_dir):
    keras = pytest.importorskip("keras")
    libri = _small_librispeech(data_dir, tmp_path / "LibriSpeech")
    manifest = tmp_path / "manifest.csv"
    shutil.copy(fixtures_dir / "male_1320.wav", tmp_path / "m.wav")
    shutil.copy(fixtures_dir / "female_3575.wav", tmp_path / "f.wav")
    manifest.write_text("path,gender,speaker_id\nm.wav,male,fx_m\nf.wav,female,fx_f\n")
    out = tmp_path / "model" / "tiny.tflite"
    rc = train_main(
        [
            "train",
            "--data", f"librispeech:{libri}",
            "--data", f"cv:{data_dir / 'commonvoice-fa'}",
            "--data", f"manifest:{manifest}",
            "--eval", f"kaggle:{data_dir / 'commonvoice-kaggle'}",
            "--out", str(out),
            "--cache-dir", str(tmp_path / "cache"),
            "--steps", "40",
            "--variants", "1",
            "--cv-tables", "validated,other",
        ]
    )  # fmt: skip
    assert rc == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["training_data"]["clips"] > 0
    assert (out.parent / "report" / "REPORT.md").is_file()

    device_model = load_model(out)
    keras_model = keras.saving.load_model(out.parent / "report" / "model.keras")
    m = device_model.metadata
    audio, _ = read_wav(fixtures_dir / "demo_male_then_female.wav")
    frames = Frontend(m.frontend).mfcc(audio)
    windows = sliding_windows(frames, m.window_frames, 5)
    float_logits = keras_model.predict(m.normalise(windows)[..., None], verbose=0).reshape(-1)
    int8_logits = device_model.logits(windows)
    agree = np.mean((float_logits > 0) == (int8_logits > 0))
    assert agree >= 0.99, f"int8 and float agree on only {agree:.1%} of {len(windows)} windows"
    # Quantisation error stays small relative to the logit range.
    spread = np.ptp(float_logits) + 1e-6
    assert np.median(np.abs(float_logits - int8_logits)) < 0.1 * spread + 0.05


def test_train_cli_names_a_missing_dataset(tmp_path, capsys):
    rc = train_main(
        ["train", "--data", f"librispeech:{tmp_path / 'nope'}", "--out", str(tmp_path / "m.tflite")]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("voicegender-train: error:") and "nope" in err and "\n" not in err


@pytest.mark.slow
def test_crossval_holds_every_speaker_out_exactly_once(data_dir, tmp_path, fixtures_dir):
    libri = _small_librispeech(data_dir, tmp_path / "LibriSpeech", per_gender=3)
    manifest = tmp_path / "manifest.csv"
    shutil.copy(fixtures_dir / "male_1320.wav", tmp_path / "m.wav")
    shutil.copy(fixtures_dir / "female_3575.wav", tmp_path / "f.wav")
    manifest.write_text("path,gender,speaker_id\nm.wav,male,fx_m\nf.wav,female,fx_f\n")
    report = tmp_path / "report"
    rc = train_main(
        [
            "crossval", "--k", "4",
            "--data", f"librispeech:{libri}",
            "--data", f"manifest:{manifest}",
            "--eval", f"kaggle:{data_dir / 'commonvoice-kaggle'}",
            "--report-dir", str(report),
            "--cache-dir", str(tmp_path / "cache"),
            "--steps", "10",
            "--variants", "1",
        ]
    )  # fmt: skip
    assert rc == 0
    result = json.loads((report / "crossval.json").read_text())
    speakers = [spk for fold in result["folds"] for spk in fold["test_speakers"]]
    assert len(result["folds"]) == 4
    assert len(speakers) == len(set(speakers)) == 8  # 6 LibriSpeech + 2 manifest speakers, once each
    n_libri = len(list(libri.glob("*/*/*/*.flac")))  # subset/speaker/chapter
    by_corpus = {k: v["clips"] for k, v in result["pooled_held_out"].items() if k != "all"}
    assert by_corpus["librispeech"] == n_libri  # every clip scored once, in its speaker's test fold
    assert result["pooled_held_out"]["all"]["clips"] == sum(by_corpus.values()) == n_libri + 2
    for fold in result["folds"]:
        assert 0.0 <= fold["test"]["clip_balanced_accuracy"] <= 1.0
        assert len(fold["sets"]) == 1
    spread = next(iter(result["sets"].values()))["clip_balanced_accuracy"]
    assert spread["min"] <= spread["mean"] <= spread["max"]
    table = (report / "crossval.md").read_text()
    assert "# Cross-validation: 4 speaker-disjoint folds" in table
    assert sum(line.startswith(f"| {i} |") for i in range(1, 5) for line in table.splitlines()) == 4


def test_crossval_needs_three_folds(tmp_path, capsys, data_dir):
    rc = train_main(["crossval", "--k", "2", "--data", f"librispeech:{data_dir / 'LibriSpeech'}"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("voicegender-train: error:") and "k must be >= 3" in err and "\n" not in err


def test_crossval_names_too_many_folds(tmp_path, capsys, fixtures_dir):
    shutil.copy(fixtures_dir / "male_1320.wav", tmp_path / "m.wav")
    shutil.copy(fixtures_dir / "female_3575.wav", tmp_path / "f.wav")
    (tmp_path / "manifest.csv").write_text("path,gender,speaker_id\nm.wav,male,fx_m\nf.wav,female,fx_f\n")
    rc = train_main(["crossval", "--k", "3", "--data", f"manifest:{tmp_path / 'manifest.csv'}"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err == "voicegender-train: error: crossval: 2 speakers cannot fill 3 folds (use a smaller --k)"

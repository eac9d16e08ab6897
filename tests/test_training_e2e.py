"""Training end to end: every reader, a short run, int8 export, device runtime agreement, the report and
``evaluate`` agreeing with the exported model, refusals before anything is written, exact ``--steps``,
and learning well above chance on a set any working recipe separates."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from voicegender.frontend import Frontend
from voicegender.model import load_model, sliding_windows
from voicegender.wavio import read_wav, write_wav
from voicegender_training.cli import main as train_main

REPO = Path(__file__).resolve().parents[1]
LOG_LINE = re.compile(r"(INFO|WARNING) [\w.]+: ")
"""What the training CLI prints: its own log lines, nothing from TensorFlow, Keras or matplotlib."""


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


def _toy_voices(dest: Path, per_gender: int, clips: int, seed: int, seconds: float = 2.4) -> Path:
    """A manifest corpus of harmonic 'voices': men at 95-135 Hz with formants 15% lower, women at
    190-250 Hz; syllables of 0.38 s with short gaps, ``seconds`` long."""
    rng = np.random.default_rng(seed)
    sr, rows = 16000, ["path,gender,speaker_id"]
    dest.mkdir(parents=True, exist_ok=True)
    for gender, (lo, hi), scale in (("male", (95, 135), 0.85), ("female", (190, 250), 1.0)):
        for s in range(per_gender):
            f0 = rng.uniform(lo, hi)
            formants = np.array([700.0, 1200.0, 2600.0]) * scale * rng.uniform(0.95, 1.05, 3)
            for k in range(clips):
                parts = []
                while sum(map(len, parts)) < seconds * sr:
                    t = np.arange(int(0.38 * sr)) / sr
                    track = f0 * rng.uniform(0.9, 1.1) * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
                    phase = 2 * np.pi * np.cumsum(track) / sr
                    harmonics = range(1, int(7000 / (1.2 * f0)))
                    gains = [
                        sum(1 / (1 + ((h * f0 - f) / 120) ** 2) for f in formants) + 0.05 for h in harmonics
                    ]
                    wave = sum(g / h * np.sin(h * phase) for g, h in zip(gains, harmonics, strict=True))
                    parts += [wave * np.hanning(len(t)) ** 0.3, np.zeros(int(0.08 * sr))]
                audio = np.concatenate(parts)[: int(seconds * sr)]
                audio = 0.3 * audio / np.max(np.abs(audio)) + rng.normal(0, 3e-4, len(audio))
                write_wav(dest / f"{gender}{s}_{k}.wav", audio.astype(np.float32), sr)
                rows.append(f"{gender}{s}_{k}.wav,{gender},toy{seed}_{gender}{s}")
    (dest / "manifest.csv").write_text("\n".join(rows) + "\n")
    return dest


def _fixture_manifest(fixtures_dir: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(fixtures_dir / "male_1320.wav", dest / "m.wav")
    shutil.copy(fixtures_dir / "female_3575.wav", dest / "f.wav")
    (dest / "manifest.csv").write_text("path,gender,speaker_id\nm.wav,male,fx_m\nf.wav,female,fx_f\n")
    return dest / "manifest.csv"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    return subprocess.run(
        [sys.executable, "-m", "voicegender_training.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def _assert_clean_output(run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout == ""
    noise = [line for line in run.stderr.splitlines() if not LOG_LINE.match(line)]
    assert not noise, "not a log line of ours:\n" + "\n".join(noise[:10])


@pytest.mark.slow
def test_tiny_training_run_exports_an_int8_model_the_device_agrees_with(data_dir, tmp_path, fixtures_dir):
    keras = pytest.importorskip("keras")
    libri = _small_librispeech(data_dir, tmp_path / "LibriSpeech")
    manifest = _fixture_manifest(fixtures_dir, tmp_path / "fx")
    toy = _toy_voices(tmp_path / "toyeval", per_gender=5, clips=2, seed=2)  # 20 clips of 2.4 s
    out = tmp_path / "model" / "tiny.tflite"
    data = [
        "--data", f"librispeech:{libri}",
        "--data", f"cv:{data_dir / 'commonvoice-fa'}",
        "--data", f"manifest:{manifest}",
        "--eval", f"kaggle:{data_dir / 'commonvoice-kaggle'}",
        "--eval", f"manifest:{toy}",
        "--cv-tables", "validated,other",
    ]  # fmt: skip
    train = _cli(
        "train",
        *data,
        "--out",
        str(out),
        "--cache-dir",
        "cache",
        "--steps",
        "40",
        "--variants",
        "1",
        cwd=tmp_path,
    )
    _assert_clean_output(train)
    assert re.search(r"epoch \d+/\d+ \(step 40/40\)", train.stderr)  # --steps 40 ran 40 steps
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["training_data"]["clips"] > 0
    report = out.parent / "report"
    text = (report / "REPORT.md").read_text()
    assert "right / uncertain / wrong" in text and "{'" not in text  # named figures, no Python dicts

    # The report's figures are the exported model's: decide the toy set again through the device pipeline.
    device_model = load_model(out)
    m = device_model.metadata
    from voicegender_training.device_eval import headline, score_set
    from voicegender_training.evaluate import EvalClip

    rows = (toy / "manifest.csv").read_text().splitlines()[1:]
    clips = [EvalClip(read_wav(toy / r.split(",")[0])[0], ",female," in r, r.split(",")[2], r) for r in rows]
    scores, verdicts, _ = score_set(device_model, clips)
    again = headline(verdicts, scores.y, device_model)
    reported = json.loads((report / "metrics.json").read_text())
    toy_set = reported["sets"][f"manifest:{toy}"]["int8"]
    for key in ("right_n", "uncertain_n", "wrong_n", "balanced_accuracy_p50"):
        assert toy_set["headline"][key] == again[key]
    # 2.4 s clips: decided after 0.3-1 s of speech; they never hold 3 s of speech.
    reach = {d: v["reach"] for d, v in toy_set["by_duration"].items()}
    assert reach["0.3"] == 1.0 and reach["3.0"] == 0.0
    assert "## Accuracy against seconds of speech" in text

    keras_model = keras.saving.load_model(report / "model.keras")
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

    # evaluate: the same figures from the same model, found again from split.json; the model untouched.
    model_bytes, meta_text = out.read_bytes(), out.with_suffix(".json").read_text()
    (report / "REPORT.md").unlink()
    evaluate = _cli("evaluate", "--model", str(out), *data, "--cache-dir", "cache", cwd=tmp_path)
    _assert_clean_output(evaluate)
    assert out.read_bytes() == model_bytes and out.with_suffix(".json").read_text() == meta_text
    rescored = json.loads((report / "metrics.json").read_text())
    assert rescored["command"] == "voicegender-train evaluate"
    assert rescored["sets"].keys() == reported["sets"].keys()
    for name, by in reported["sets"].items():
        for model_name in ("int8", "float"):
            assert rescored["sets"][name][model_name]["band"] == by[model_name]["band"], (name, model_name)
    assert rescored["training"]["history"] == reported["training"]["history"]
    assert (report / "REPORT.md").is_file() and (out.parent / "MODEL_CARD.md").is_file()


def test_train_refuses_too_few_speakers_before_writing_anything(data_dir, tmp_path, capsys):
    libri = _small_librispeech(data_dir, tmp_path / "LibriSpeech", per_gender=3)
    out = tmp_path / "model" / "m.tflite"
    args = [
        "train",
        "--data",
        f"librispeech:{libri}",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    rc = train_main(args)
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "voicegender-train: error: too few speakers for a train/validation/test split: 3 female and 3 male "
        "speakers give (female/male) train 3/3, validation 0/0, test 0/0; validation and test each need a "
        "speaker of each gender, i.e. at least 4 speakers of each gender in one corpus (they take 15% / 15% "
        "of its smaller gender)"
    )
    assert not out.parent.exists() and not (tmp_path / "cache").exists()


def test_train_cli_names_a_missing_dataset(tmp_path, capsys):
    rc = train_main(
        ["train", "--data", f"librispeech:{tmp_path / 'nope'}", "--out", str(tmp_path / "m.tflite")]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("voicegender-train: error:") and "nope" in err and "\n" not in err


def _separable_windows(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Small 'MFCC windows' (24 frames x 12 coefficients): female ones have 2 more in coefficients 2-4."""
    y = rng.random(n) < 0.5
    x = rng.normal(size=(n, 24, 12)).astype(np.float32)
    x[y, :, 2:5] += 2.0
    return x, y


@pytest.mark.slow
def test_fit_runs_exactly_the_steps_asked():
    from voicegender_training.cnn import CnnSettings
    from voicegender_training.train import TrainSettings, fit

    x, y = _separable_windows(300, np.random.default_rng(0))  # 3 batches of 128 per epoch
    tiny = CnnSettings(stem_filters=4, block_filters=(4,), block_strides=(1,))
    for steps, epochs in ((2, 1), (7, 3)):
        model, _, history = fit(x, y, None, None, TrainSettings(), tiny, steps=steps)
        assert int(model.optimizer.iterations.numpy()) == steps
        assert len(history["loss"]) == epochs


@pytest.mark.slow
def test_fit_learns_a_separable_toy_set_far_above_chance():
    from voicegender_training.cnn import CnnSettings
    from voicegender_training.train import TrainSettings, fit, keras_scorer

    rng = np.random.default_rng(0)
    (x, y), (x_test, y_test) = _separable_windows(640, rng), _separable_windows(200, rng)
    small = CnnSettings(stem_filters=8, block_filters=(8, 8), block_strides=(1, 2))
    model, norm, _ = fit(x, y, None, None, TrainSettings(epochs=8, batch_size=32), small)
    accuracy = np.mean((keras_scorer(model, norm)(x_test) > 0) == y_test)
    assert accuracy >= 0.95, f"held-out accuracy {accuracy:.1%} (chance: 50%)"


@pytest.mark.slow
def test_crossval_holds_every_speaker_out_exactly_once(data_dir, tmp_path, fixtures_dir):
    libri = _small_librispeech(data_dir, tmp_path / "LibriSpeech", per_gender=3)
    manifest = _fixture_manifest(fixtures_dir, tmp_path / "fx")
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
    # Every clip the recipe keeps (at most max_seconds_per_speaker of audio per speaker).
    from voicegender_training.datasets import read_librispeech
    from voicegender_training.ship import ShipSettings
    from voicegender_training.splits import cap_speakers

    cap = ShipSettings().split
    libri_clips, _ = read_librispeech(libri)
    n_libri = len(cap_speakers(libri_clips, cap.max_clips_per_speaker, cap.max_seconds_per_speaker, cap.seed))
    by_corpus = {k: v["clips"] for k, v in result["pooled_held_out"].items() if k != "all"}
    assert by_corpus["librispeech"] == n_libri  # every clip scored once, in its speaker's test fold
    assert result["pooled_held_out"]["all"]["clips"] == sum(by_corpus.values()) == n_libri + 2
    # Pooling: the held-out decisions over all clips are the folds' decisions added up.
    pooled = result["pooled_held_out"]["all"]["band"]
    for key in ("n", "right_n", "uncertain_n", "wrong_n"):
        assert pooled[key] == sum(fold["test"]["band"][key] for fold in result["folds"]), key
    # The spread over folds is computed from the folds' own figures.
    (name,) = result["sets"]
    per_fold = np.array([fold["sets"][name]["clip_balanced_accuracy"] for fold in result["folds"]])
    spread = result["sets"][name]["clip_balanced_accuracy"]
    assert (spread["mean"], spread["min"], spread["max"]) == pytest.approx(
        (per_fold.mean(), per_fold.min(), per_fold.max())
    )
    assert spread["sd"] == pytest.approx(per_fold.std(ddof=1))
    table = (report / "crossval.md").read_text()
    assert "# Cross-validation: 4 speaker-disjoint folds" in table
    assert sum(line.startswith(f"| {i} |") for i in range(1, 5) for line in table.splitlines()) == 4


def test_crossval_needs_three_folds(tmp_path, capsys, data_dir):
    rc = train_main(["crossval", "--k", "2", "--data", f"librispeech:{data_dir / 'LibriSpeech'}"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("voicegender-train: error:") and "k must be >= 3" in err and "\n" not in err


def test_crossval_names_too_many_folds(tmp_path, capsys, fixtures_dir):
    manifest = _fixture_manifest(fixtures_dir, tmp_path)
    rc = train_main(["crossval", "--k", "3", "--data", f"manifest:{manifest}"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err == "voicegender-train: error: crossval: 2 speakers cannot fill 3 folds (use a smaller --k)"

"""The original-system baseline: mel-mean feature, metrics, and a short training run on real features."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import librosa
import numpy as np
import pytest
import soundfile as sf

from voicegender.errors import VoicegenderError
from voicegender_training import baseline

NPZ = ("commonvoice-kaggle-melmean", "cv_melmean128.npz")


@pytest.fixture(scope="module")
def small_npz(data_dir, tmp_path_factory):
    """3000 random rows of the real mel-mean npz (balanced as the whole set is)."""
    with np.load(data_dir.joinpath(*NPZ)) as data:
        rows = np.random.default_rng(1).choice(len(data["X"]), 3000, replace=False)
        subset = {key: data[key][rows] for key in ("X", "y_male", "cv_split", "clip")}
    path = tmp_path_factory.mktemp("baseline") / "small.npz"
    np.savez(path, **subset)
    return path


@pytest.fixture(scope="module")
def small_run(small_npz):
    settings = baseline.BaselineSettings(epochs=2, batch_size=64)
    return baseline.train_baseline(small_npz, seed=3, settings=settings), settings


def test_melmean_features_of_fixture_wav(fixtures_dir):
    audio, rate = sf.read(fixtures_dir / "male_1320.wav", dtype="float32")
    assert rate == baseline.INPUT_SAMPLE_RATE
    features = baseline.melmean_features(audio)
    assert features.shape == (128,)
    assert np.all(np.isfinite(features)) and np.all(features >= 0)
    # 16 kHz audio has nothing above 8 kHz: those mel bins hold orders of magnitude less power.
    centres = librosa.mel_frequencies(n_mels=130, fmax=baseline.MEL_SAMPLE_RATE / 2)[1:-1]
    assert features[centres > 8500].max() < 1e-4 * features[centres < 4000].max()


def test_melmean_features_peak_at_tone_frequency():
    t = np.arange(2 * baseline.INPUT_SAMPLE_RATE) / baseline.INPUT_SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    features = baseline.melmean_features(tone)
    centres = librosa.mel_frequencies(n_mels=130, fmax=baseline.MEL_SAMPLE_RATE / 2)[1:-1]
    assert abs(centres[np.argmax(features)] - 1000.0) < 40.0


@pytest.mark.parametrize(
    "audio",
    [np.zeros(0, np.float32), np.zeros((10, 2), np.float32), np.zeros(100, np.int16), np.full(100, np.nan)],
)
def test_melmean_features_refuses_bad_audio(audio):
    with pytest.raises(VoicegenderError, match="melmean_features"):
        baseline.melmean_features(audio)


def test_classification_metrics_balanced_accuracy_and_confusion():
    # 4 female (3 right), 2 male (1 right): recalls 0.75 and 0.5.
    metrics = baseline.classification_metrics([1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 1])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["balanced_accuracy"] == pytest.approx(0.625)
    assert metrics["confusion"] == {"female": {"female": 3, "male": 1}, "male": {"female": 1, "male": 1}}
    one_class = baseline.classification_metrics([0, 0, 0], [0, 1, 0])
    assert one_class["balanced_accuracy"] == pytest.approx(2 / 3) and one_class["recall_female"] is None


def test_train_baseline_missing_npz_is_a_clear_error(tmp_path):
    with pytest.raises(VoicegenderError, match="not found"):
        baseline.train_baseline(tmp_path / "nope.npz", seed=0)


@pytest.mark.slow
def test_train_baseline_small_subsample_beats_chance(small_run):
    (_, metrics), settings = small_run
    assert metrics["n_test"] == 300 and metrics["n_val"] == 300 and metrics["n_train"] == 2400
    assert metrics["epochs_run"] == settings.epochs
    assert metrics["test"]["accuracy"] > 0.75
    assert metrics["test"]["balanced_accuracy"] > 0.75
    assert sum(metrics["release_split"]["counts"].values()) == 3000


@pytest.mark.slow
def test_train_baseline_is_deterministic_for_a_seed(small_npz, small_run):
    (model, metrics), settings = small_run
    again, again_metrics = baseline.train_baseline(small_npz, seed=3, settings=settings)
    assert again_metrics["test"] == metrics["test"]
    probe = np.random.default_rng(0).random((5, 128), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(probe, verbose=0), again.predict(probe, verbose=0))


@pytest.mark.slow
def test_saved_baseline_reloads_and_scores_clips(small_run, fixtures_dir, tmp_path):
    (model, metrics), _ = small_run
    baseline.save_baseline(model, metrics, tmp_path / "bl")
    loaded, loaded_metrics = baseline.load_baseline(tmp_path / "bl")
    assert loaded_metrics == metrics
    clips = [
        (sf.read(fixtures_dir / "male_1320.wav", dtype="float32")[0], 0),
        (sf.read(fixtures_dir / "female_3575.wav", dtype="float32")[0], 1),
    ]
    scored = baseline.score_baseline(model, clips)
    assert baseline.score_baseline(loaded, clips) == scored
    assert scored["n"] == 2
    assert sum(sum(row.values()) for row in scored["confusion"].values()) == 2

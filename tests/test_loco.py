"""Leave-one-corpus-out trains each model for the shipped model's number of steps, without its family,
and reuses a model only for the same windows."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from voicegender.frontend import FrontendSettings
from voicegender.model import load_model
from voicegender_training.datasets import Clip
from voicegender_training.evaluate import EvalClip
from voicegender_training.export import write_model
from voicegender_training.features import FeatureSet
from voicegender_training.loco import run_loco
from voicegender_training.ship import ShipSettings
from voicegender_training.train import TrainSettings


def voice(f0: float, seconds: float = 1.5, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sign(np.sin(2 * np.pi * f0 * t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(
        np.float32
    )


@pytest.mark.slow
def test_each_family_model_trains_the_given_steps_without_that_family(tmp_path: Path, caplog) -> None:
    pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    corpora = ["librispeech", "librispeech", "cv61-multilingual", "cv61-multilingual"]
    clips = [
        Clip(Path(f"{i}.wav"), "female" if i % 2 else "male", f"s{i}", corpus, 1.5)
        for i, corpus in enumerate(corpora)
    ]
    window_clip = np.repeat(np.arange(4), 8).astype(np.int32)
    x = rng.normal(size=(len(window_clip), 98, 40)).astype(np.float32)
    x[:, :, 1] += np.where(window_clip % 2, 2.0, -2.0)[:, None]
    train_set = FeatureSet(x, window_clip, np.zeros(len(window_clip), np.int8))
    y = (window_clip % 2).astype(bool)
    s = ShipSettings(train=TrainSettings(batch_size=8))
    held_out = {
        family: [EvalClip(voice(110.0), False, "m", "m.wav"), EvalClip(voice(220.0), True, "f", "f.wav")]
        for family in ("LibriSpeech", "Common Voice")
    }

    def write(family: str, tflite: bytes, norm):
        path = tmp_path / f"{family}.tflite"
        write_model(path, tflite, FrontendSettings(), 98, 25, norm, s.thresholds, {})
        return load_model(path)

    with caplog.at_level(logging.INFO, logger="voicegender_training"):
        out = run_loco(
            clips, train_set, y, clips, train_set, y, held_out, {}, s, write, tmp_path, lambda _: None, 5
        )

    assert set(out) == {"LibriSpeech", "Common Voice"}
    for figures in out.values():
        assert figures["steps"] == 5
        assert figures["training_windows"] == 16  # the other family's two clips of 8 windows
        assert figures["int8"]["clips"] == 2
    assert len([m for m in caplog.messages if "(step 5/5)" in m]) == 2
    # A second run with the same windows, steps and code reuses the trained models.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="voicegender_training"):
        run_loco(
            clips, train_set, y, clips, train_set, y, held_out, {}, s, write, tmp_path, lambda _: None, 5
        )
    assert not [m for m in caplog.messages if "training without" in m]
    # Other windows of the same clips (other window or augmentation settings) train new models.
    caplog.clear()
    other = FeatureSet(x + 0.5, window_clip, train_set.variant)
    with caplog.at_level(logging.INFO, logger="voicegender_training"):
        run_loco(clips, other, y, clips, other, y, held_out, {}, s, write, tmp_path, lambda _: None, 5)
    assert len([m for m in caplog.messages if "training without" in m]) == 2

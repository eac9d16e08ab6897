"""The device's model loader: the shipped model runs, and every broken model is refused in one line."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from voicegender.errors import VoicegenderError
from voicegender.frontend import FRONTEND_VERSION, Frontend
from voicegender.model import DEFAULT_MODEL, Thresholds, interpreter_class, load_model, sliding_windows
from voicegender.wavio import read_wav

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="shipped model not built yet")


@pytest.fixture()
def model_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "m.tflite"
    shutil.copy(DEFAULT_MODEL, dest)
    shutil.copy(DEFAULT_MODEL.with_suffix(".json"), dest.with_suffix(".json"))
    return dest


def _edit_metadata(path: Path, **changes) -> None:
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    meta_path.write_text(json.dumps(meta))


def _one_line_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> None:
    msg = str(excinfo.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, msg


def test_shipped_model_tells_the_fixture_voices_apart(fixtures_dir: Path) -> None:
    model = load_model()
    m = model.metadata
    assert model.path.stat().st_size <= 64 * 1024
    assert m.window_frames == 98 and m.frontend.n_mfcc == m.frontend.n_mels
    fe = Frontend(m.frontend)
    for name, female in (("male_1320.wav", False), ("female_3575.wav", True)):
        audio, rate = read_wav(fixtures_dir / name)
        assert rate == m.frontend.sample_rate
        logits = model.logits(sliding_windows(fe.mfcc(audio), m.window_frames, m.hop_frames))
        assert len(logits) > 10
        assert (logits.mean() > 0) == female


def test_logits_are_deterministic_and_batch_independent(fixtures_dir: Path) -> None:
    model = load_model()
    m = model.metadata
    audio, _ = read_wav(fixtures_dir / "female_3575.wav")
    windows = sliding_windows(Frontend(m.frontend).mfcc(audio), m.window_frames, m.hop_frames)
    all_at_once = model.logits(windows)
    one_by_one = np.concatenate([model.logits(w) for w in windows])
    np.testing.assert_array_equal(all_at_once, one_by_one)


def test_missing_model_file(tmp_path: Path, model_copy: Path) -> None:
    model_copy.unlink()
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, str(model_copy), "not found")


def test_missing_metadata(model_copy: Path) -> None:
    model_copy.with_suffix(".json").unlink()
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, "m.json", "not found")


@pytest.mark.parametrize("content", [b"", b"not a flatbuffer at all" * 10, None])
def test_corrupt_model_bytes(model_copy: Path, content: bytes | None) -> None:
    if content is None:  # a truncated real model
        content = model_copy.read_bytes()[:2000]
    model_copy.write_bytes(content)
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, str(model_copy), "not a valid TFLite model")


def test_unreadable_metadata_json(model_copy: Path) -> None:
    model_copy.with_suffix(".json").write_text("{ nope")
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, "m.json", "unreadable")


def test_front_end_version_mismatch_is_refused(model_copy: Path) -> None:
    _edit_metadata(model_copy, frontend_version=FRONTEND_VERSION + 1)
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, "front-end version", "retrain")


def test_front_end_settings_that_do_not_fit_the_model_are_refused(model_copy: Path) -> None:
    meta = json.loads(model_copy.with_suffix(".json").read_text())
    fe = dict(meta["frontend"], n_mfcc=meta["frontend"]["n_mfcc"] - 1)
    _edit_metadata(
        model_copy, frontend=fe, feature_mean=meta["feature_mean"][:-1], feature_std=meta["feature_std"][:-1]
    )
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, "input shape", "does not match")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"frontend": {"sample_rate": 16000, "bogus": 1}}, "unknown key"),
        ({"format": "something-else"}, "not voicegender-model"),
        ({"window_frames": None}, "missing key 'window_frames'"),
        ({"thresholds": {"male_below": 0.8, "female_above": 0.2}}, "male_below"),
        ({"feature_std": [0.0] * 40}, "feature_std"),
        ({"output": "softmax"}, "unsupported model output"),
    ],
)
def test_bad_metadata_values(model_copy: Path, changes: dict, fragment: str) -> None:
    _edit_metadata(model_copy, **changes)
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, fragment)


def test_window_shape_is_checked() -> None:
    model = load_model()
    with pytest.raises(VoicegenderError, match="windows must be"):
        model.logits(np.zeros((2, 10, 3), np.float32))


def test_interpreter_fallback_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert interpreter_class()[1] == "ai-edge-litert"
    # Hide ai-edge-litert and tflite-runtime: tensorflow.lite is the last resort (a desktop).
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(VoicegenderError, match="no TFLite interpreter"):
        interpreter_class()


def test_thresholds_band() -> None:
    t = Thresholds(0.35, 0.65)
    labels = [t.label(p) for p in (0.1, 0.35, 0.5, 0.65, 0.9)]
    assert labels == ["male", "male", "uncertain", "female", "female"]

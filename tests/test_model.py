"""The device's model loader: the shipped model runs, and every broken model is refused in one line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from voicegender.config import Config
from voicegender.doctor import check_model
from voicegender.errors import VoicegenderError
from voicegender.frontend import FRONTEND_VERSION, Frontend
from voicegender.model import (
    DEFAULT_MODEL,
    INTEGRITY_KEYS,
    Thresholds,
    interpreter_class,
    load_model,
    seal,
    sliding_windows,
)
from voicegender.wavio import read_wav


@pytest.fixture()
def shipped() -> Path:
    """The shipped model is part of the repository: without it these tests fail, they do not skip."""
    if not (DEFAULT_MODEL.is_file() and DEFAULT_MODEL.with_suffix(".json").is_file()):
        pytest.fail(f"shipped model {DEFAULT_MODEL} or its .json is missing (restore models/ from git)")
    return DEFAULT_MODEL


@pytest.fixture()
def model_copy(tmp_path: Path, shipped: Path) -> Path:
    dest = tmp_path / "m.tflite"
    shutil.copy(shipped, dest)
    shutil.copy(shipped.with_suffix(".json"), dest.with_suffix(".json"))
    return dest


def _edit_metadata(path: Path, reseal: bool = True, **changes) -> None:
    """Change the metadata beside ``path``; ``reseal``: as an export would write it (hashes updated),
    so a check after the integrity check is what refuses it."""
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    if reseal:
        meta = seal({k: v for k, v in meta.items() if k not in INTEGRITY_KEYS}, path.read_bytes())
    meta_path.write_text(json.dumps(meta))


def _one_line_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> None:
    msg = str(excinfo.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, msg


def test_shipped_model_tells_the_fixture_voices_apart(shipped: Path, fixtures_dir: Path) -> None:
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


def test_logits_are_deterministic_and_batch_independent(shipped: Path, fixtures_dir: Path) -> None:
    model = load_model()
    m = model.metadata
    audio, _ = read_wav(fixtures_dir / "female_3575.wav")
    windows = sliding_windows(Frontend(m.frontend).mfcc(audio), m.window_frames, m.hop_frames)
    all_at_once = model.logits(windows)
    one_by_one = np.concatenate([model.logits(w) for w in windows])
    np.testing.assert_array_equal(all_at_once, one_by_one)


@pytest.mark.parametrize("json_too", [False, True])
def test_missing_model_file_is_named(model_copy: Path, json_too: bool) -> None:
    model_copy.unlink()
    if json_too:  # e.g. a typo in --model: the file asked for is what is missing
        model_copy.with_suffix(".json").unlink()
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, str(model_copy), "not found")
    assert "m.json" not in str(exc.value)


def test_missing_metadata(model_copy: Path) -> None:
    model_copy.with_suffix(".json").unlink()
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, "m.json", "not found")


@pytest.mark.parametrize("content", [b"", b"not a flatbuffer at all" * 10, None])
def test_corrupt_model_bytes(model_copy: Path, content: bytes | None) -> None:
    # Metadata sealed for the broken bytes: the interpreter is what refuses them.
    if content is None:  # a truncated real model
        content = model_copy.read_bytes()[:2000]
    model_copy.write_bytes(content)
    _edit_metadata(model_copy)
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, str(model_copy), "not a valid TFLite model")


def test_shipped_metadata_records_the_model_file(shipped: Path) -> None:
    meta = json.loads(shipped.with_suffix(".json").read_text())
    content = shipped.read_bytes()
    assert meta["model_bytes"] == len(content)
    assert meta["model_sha256"] == hashlib.sha256(content).hexdigest()
    assert load_model().unverified == ()


def _flip_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01  # in the weights: a model that still loads and runs
    path.write_bytes(bytes(content))


@pytest.mark.parametrize(
    ("tamper", "fragment"),
    [
        (_flip_byte, "sha256"),
        (lambda p: p.write_bytes(p.read_bytes() + b"\0" * 16), "bytes"),
        (lambda p: p.write_bytes(p.read_bytes()[:-16]), "bytes"),
    ],
    ids=["one bit", "appended", "truncated"],
)
def test_model_file_changed_after_export_is_refused(model_copy: Path, tamper, fragment: str) -> None:
    tamper(model_copy)
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, str(model_copy), "does not match its metadata", fragment, "changed")


def test_metadata_of_another_model_is_refused(model_copy: Path, tmp_path: Path) -> None:
    # A JSON sealed for some other .tflite next to this one (e.g. a half-copied update).
    meta = json.loads(model_copy.with_suffix(".json").read_text())
    other = seal({k: v for k, v in meta.items() if k not in INTEGRITY_KEYS}, model_copy.read_bytes()[::-1])
    model_copy.with_suffix(".json").write_text(json.dumps(other))
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, "does not match its metadata", "sha256", "belong to different models")


def _frontend(path: Path, **changes) -> dict:
    return {**json.loads(path.with_suffix(".json").read_text())["frontend"], **changes}


@pytest.mark.parametrize(
    "changes",
    [
        lambda p: {"frontend": _frontend(p, n_mels=64)},
        lambda p: {"frontend": _frontend(p, fmin=0.0)},
        lambda p: {"feature_mean": [0.0] * 40},
        lambda p: {"relative_c0": False},
        lambda p: {"window_frames": 100},
        lambda p: {"frontend_version": FRONTEND_VERSION + 1},
    ],
    ids=["n_mels=64", "fmin", "feature_mean", "relative_c0", "window_frames", "frontend_version"],
)
def test_input_settings_edited_after_export_are_refused(model_copy: Path, changes) -> None:
    # The tensor shape cannot tell n_mels=64 from 40 (n_mfcc stays 40): the settings hash can.
    _edit_metadata(model_copy, reseal=False, **changes(model_copy))
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, str(model_copy), "does not match its metadata", "settings_sha256", "edited")


def test_operating_choices_may_be_edited(model_copy: Path) -> None:
    # Thresholds and the window hop are not part of what the model's input means.
    _edit_metadata(
        model_copy, reseal=False, thresholds={"male_below": 0.3, "female_above": 0.7}, hop_frames=10
    )
    m = load_model(model_copy).metadata
    assert (m.thresholds, m.hop_frames) == (Thresholds(0.3, 0.7), 10)


def test_reformatted_metadata_still_matches(model_copy: Path) -> None:
    # Another JSON writer may print 8000.0 as 8000 and reorder keys: the same numbers, the same model.
    meta = json.loads(model_copy.with_suffix(".json").read_text())
    meta["frontend"] = {k: int(v) if v == int(v) else v for k, v in reversed(meta["frontend"].items())}
    model_copy.with_suffix(".json").write_text(json.dumps(dict(reversed(meta.items()))))
    assert load_model(model_copy).unverified == ()


def test_metadata_from_an_older_export_loads_with_a_warning(
    model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _edit_metadata(model_copy, reseal=False, model_bytes=None, model_sha256=None, settings_sha256=None)
    with caplog.at_level(logging.WARNING, logger="voicegender.model"):
        model = load_model(model_copy)
    assert model.unverified == INTEGRITY_KEYS
    assert any("unverified" in r.getMessage() and "re-export" in r.getMessage() for r in caplog.records)
    verdict = check_model(Config(model=dataclasses.replace(Config().model, path=str(model_copy))))
    assert verdict.ok and "unverified" in verdict.detail and "re-export" in verdict.detail


def test_doctor_reports_a_refused_model_with_its_reason(model_copy: Path) -> None:
    config = Config(model=dataclasses.replace(Config().model, path=str(model_copy)))
    assert check_model(config).ok and "sha256 match" in check_model(config).detail
    _edit_metadata(model_copy, reseal=False, frontend=_frontend(model_copy, n_mels=64))
    verdict = check_model(config)
    assert not verdict.ok and "does not match its metadata" in verdict.detail
    assert verdict.line().startswith("FAIL model: ")


def test_unreadable_metadata_json(model_copy: Path) -> None:
    model_copy.with_suffix(".json").write_text("{ nope")
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, "m.json", "unreadable")


def test_front_end_version_unknown_here_is_refused(model_copy: Path) -> None:
    # As a genuine export from newer software would be: sealed, but for another front end.
    _edit_metadata(model_copy, frontend_version=FRONTEND_VERSION + 1)
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(
        exc, f"front-end version {FRONTEND_VERSION + 1}", f"has version {FRONTEND_VERSION}", "retrain"
    )


def test_fewer_mfccs_than_the_input_tensor_are_refused(model_copy: Path) -> None:
    meta = json.loads(model_copy.with_suffix(".json").read_text())
    fe = dict(meta["frontend"], n_mfcc=meta["frontend"]["n_mfcc"] - 1)
    _edit_metadata(
        model_copy, frontend=fe, feature_mean=meta["feature_mean"][:-1], feature_std=meta["feature_std"][:-1]
    )
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, "input shape (1, 98, 40, 1)", "does not match", "40 features", "n_mfcc=39")


def test_window_longer_than_the_input_tensor_is_refused(model_copy: Path) -> None:
    _edit_metadata(model_copy, window_frames=100)
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, "input shape (1, 98, 40, 1)", "98 frames", "window_frames=100")


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
    _edit_metadata(model_copy, **changes)  # resealed: the value check, not the hash, refuses it
    with pytest.raises(VoicegenderError) as exc:
        load_model(model_copy)
    _one_line_error(exc, fragment)


def test_window_shape_is_checked(shipped: Path) -> None:
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

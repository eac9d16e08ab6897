"""Decoding to float32 mono 16 kHz, the ffmpeg fallback, and batch loading that survives bad files."""

from __future__ import annotations

import logging
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicegender.errors import VoicegenderError
from voicegender.resample import resample
from voicegender_training.audio_decode import load_audio, load_batch
from voicegender_training.datasets import Clip

KAGGLE_MP3 = "commonvoice-kaggle/cv-valid-test/sample-000003.mp3"  # 48 kHz mono
CV_FA_MP3 = "commonvoice-fa/clips/common_voice_fa_36611609.mp3"  # 32 kHz mono


def _sine(seconds: float, rate: int, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _bad_files(folder: Path) -> dict[str, Path]:
    """A file of each kind the loader must reject."""
    rng = np.random.default_rng(1)
    files = {
        "corrupt": folder / "corrupt.wav",
        "empty": folder / "empty.flac",
        "text": folder / "notes.mp3",
        "short": folder / "short.wav",
        "no samples": folder / "nothing.wav",
        "nan": folder / "nan.wav",
    }
    files["corrupt"].write_bytes(b"RIFF" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not audio\n" * 50)
    soundfile.write(files["short"], _sine(0.2, 16000), 16000)
    soundfile.write(files["no samples"], np.zeros(0, np.float32), 16000)
    soundfile.write(files["nan"], np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    return files


def test_fixture_wav_is_returned_unchanged(fixtures_dir: Path) -> None:
    path = fixtures_dir / "male_1320.wav"
    audio = load_audio(path)
    reference, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000
    assert audio.dtype == np.float32 and audio.ndim == 1
    np.testing.assert_array_equal(audio, reference)


def test_stereo_44k_flac_is_mixed_and_resampled(tmp_path: Path) -> None:
    left, right = _sine(1.0, 44100, 1000.0), _sine(1.0, 44100, 3000.0)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_24")
    audio = load_audio(path)
    assert audio.dtype == np.float32
    assert audio.size == math.ceil(44100 * 16000 / 44100)
    expected = resample((left + right) / 2, 44100, 16000)
    np.testing.assert_allclose(audio, expected, atol=1e-4)  # 24-bit quantisation
    spectrum = np.abs(np.fft.rfft(audio[2000:14000]))
    freqs = np.fft.rfftfreq(12000, 1 / 16000)
    assert sorted(freqs[np.argsort(spectrum)[-2:]]) == pytest.approx([1000, 3000], abs=2)


def test_ogg_vorbis(tmp_path: Path) -> None:
    path = tmp_path / "tone.ogg"
    soundfile.write(path, _sine(0.5, 22050), 22050, format="OGG", subtype="VORBIS")
    audio = load_audio(path)
    assert audio.size == math.ceil(0.5 * 22050 * 16000 / 22050)
    assert 0.3 < np.max(np.abs(audio)) < 0.7


@pytest.mark.parametrize("name,rate", [(KAGGLE_MP3, 48000), (CV_FA_MP3, 32000)])
def test_real_mp3(data_dir: Path, name: str, rate: int) -> None:
    path = data_dir / name
    native, native_rate = soundfile.read(path, dtype="float32")
    assert native_rate == rate
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size == math.ceil(native.size * 16000 / rate)
    assert 1.0 < audio.size / 16000 < 8.0
    assert 0.05 < np.max(np.abs(audio)) <= 1.0


@pytest.mark.parametrize("name", [KAGGLE_MP3, CV_FA_MP3])
def test_ffmpeg_fallback_matches_soundfile(data_dir: Path, name: str) -> None:
    path = data_dir / name
    via_soundfile = load_audio(path)
    via_ffmpeg = load_audio(path, decoders=("ffmpeg",))
    assert via_ffmpeg.shape == via_soundfile.shape
    np.testing.assert_allclose(via_ffmpeg, via_soundfile, atol=1e-4)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_without_soundfile_ffmpeg_decodes(tmp_path: Path, fixtures_dir: Path, monkeypatch) -> None:
    reference, _ = soundfile.read(fixtures_dir / "female_3575.wav", dtype="float32")
    path = tmp_path / "female.flac"
    soundfile.write(path, reference, 16000)
    monkeypatch.setitem(sys.modules, "soundfile", None)  # `import soundfile` now fails
    np.testing.assert_array_equal(load_audio(path), reference)  # FLAC is lossless: exactly the WAV


def test_no_ffmpeg_and_no_soundfile_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "tone.flac"
    soundfile.write(path, _sine(0.5, 16000), 16000)
    monkeypatch.setitem(sys.modules, "soundfile", None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(VoicegenderError, match="reads WAV only") as exc:
        load_audio(path)
    assert str(exc.value).startswith(f"{path}: FLAC audio")


def test_load_audio_errors_name_the_file(tmp_path: Path) -> None:
    files = _bad_files(tmp_path)
    for kind, message in [("corrupt", "not WAVE"), ("empty", "file is empty"), ("text", "cannot decode")]:
        with pytest.raises(VoicegenderError, match=message) as exc:
            load_audio(files[kind])
        assert str(exc.value).startswith(f"{files[kind]}: ")
        assert "\n" not in str(exc.value)
    with pytest.raises(VoicegenderError, match="no such file"):
        load_audio(tmp_path / "missing.wav")


def test_load_batch_keeps_going_past_bad_files(
    tmp_path: Path, fixtures_dir: Path, data_dir: Path, caplog
) -> None:
    files = _bad_files(tmp_path)
    good = [fixtures_dir / "male_1320.wav", data_dir / KAGGLE_MP3, fixtures_dir / "female_3575.wav"]
    items = [good[0], files["corrupt"], files["empty"], good[1], files["text"], files["short"]]
    items += [files["no samples"], files["nan"], tmp_path / "missing.wav", good[2]]
    with caplog.at_level(logging.WARNING):
        result = load_batch(items, min_seconds=0.5)
    assert [path for path, _ in result.loaded] == good
    assert all(a.dtype == np.float32 and a.size >= 8000 for _, a in result.loaded)
    reasons = dict(result.rejects)
    assert set(reasons) == {*files.values(), tmp_path / "missing.wav"}
    assert reasons[files["empty"]] == "file is empty"
    assert reasons[files["short"]] == "too short: 0.20 s < 0.5 s"
    assert reasons[files["no samples"]] == "contains no audio (0 samples)"
    assert reasons[files["nan"]] == "contains NaN or infinite samples"
    assert reasons[tmp_path / "missing.wav"] == "no such file"
    assert reasons[files["corrupt"]].startswith("RIFF file but not WAVE")
    assert reasons[files["text"]].startswith("cannot decode it (soundfile: ")
    assert result.reject_counts() == {
        "RIFF file but not WAVE": 1,
        "cannot decode it": 1,
        "file is empty": 1,
        "too short": 1,
        "contains no audio": 1,
        "contains NaN or infinite samples": 1,
        "no such file": 1,
    }
    assert any("skipped 7 of 10 files" in r.getMessage() for r in caplog.records)


def test_load_batch_min_seconds_boundary_and_clips(tmp_path: Path) -> None:
    exact, under = tmp_path / "exact.wav", tmp_path / "under.wav"
    soundfile.write(exact, _sine(1.0, 16000), 16000)
    soundfile.write(under, _sine(1.0, 16000)[:-1], 16000)
    clips = [Clip(exact, "male", "s1", "synthetic", 1.0), Clip(under, "female", "s2", "synthetic", None)]
    result = load_batch(clips, min_seconds=1.0)
    assert [clip for clip, _ in result.loaded] == clips[:1]
    assert [path for path, _ in result.rejects] == [under]

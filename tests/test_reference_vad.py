"""The reference VAD (silero-vad) used to measure the device VAD, and the agreement figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicegender.vad import VadSettings, VoiceActivityDetector
from voicegender.wavio import read_wav
from voicegender_training.reference_vad import (
    CHUNK,
    SAMPLE_RATE,
    SileroSettings,
    agreement,
    speech_chunks,
)

FIXTURES = Path(__file__).parent / "fixtures"
CHUNK_S = CHUNK / SAMPLE_RATE


def chunks(*runs: tuple[float, int]) -> np.ndarray:
    return np.concatenate([np.full(n, p, np.float32) for p, n in runs])


def test_speech_starts_at_threshold_and_bridges_short_dips():
    probs = chunks((0.1, 10), (0.9, 20), (0.2, 2), (0.9, 20), (0.1, 10))  # a 64 ms dip: still one stretch
    speech = speech_chunks(probs, SileroSettings())
    assert not speech[:10].any() and speech[10:52].all() and not speech[52:].any()


def test_speech_ends_after_the_minimum_silence_and_short_stretches_drop():
    quiet = int(np.ceil(0.1 / CHUNK_S))
    probs = chunks((0.1, 5), (0.9, 20), (0.1, quiet + 2), (0.9, 3), (0.1, 10))  # 96 ms burst < 250 ms
    speech = speech_chunks(probs, SileroSettings())
    assert speech[5:25].all() and not speech[25:].any() and not speech[:5].any()


def test_agreement_counts_misses_extras_and_starved_clips():
    ref = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    ours = np.array([0, 1, 1, 1, 1, 0, 0, 0], bool)
    silent_ours = np.zeros(8, bool)
    a = agreement([(ours, ref), (silent_ours, ref)], hop_seconds=0.1, min_speech=0.3)
    assert a.reference_seconds == pytest.approx(0.8) and a.ours_seconds == pytest.approx(0.4)
    assert a.missed == pytest.approx(5 / 8)  # 1 of 4 in the first clip, all 4 in the second
    assert a.extra == pytest.approx(1 / 4)
    assert a.starved == pytest.approx(0.5)  # only the second clip: ours found no speech there


@pytest.mark.slow
def test_silero_finds_the_speech_ours_finds_in_a_recording(tmp_path):
    pytest.importorskip("onnxruntime")
    from voicegender_training.reference_vad import ReferenceVadError, SileroVad

    try:
        reference = SileroVad(tmp_path)  # fetches the model from PyPI
    except ReferenceVadError as exc:
        pytest.skip(str(exc))
    audio, rate = read_wav(FIXTURES / "male_1320.wav")
    assert rate == SAMPLE_RATE
    detector = VoiceActivityDetector(VadSettings())
    ours = np.concatenate((detector.push(audio), detector.flush())).astype(bool)
    fe = detector.frontend
    ref = reference.speech_frames(audio, ours.size, fe.hop_length, fe.win_length)
    assert ref.size == ours.size and 0.5 < ref.mean() < 0.98
    a = agreement([(ours, ref)], fe.hop_length / SAMPLE_RATE, 0.25)
    assert a.missed < 0.3 and a.extra < 0.3 and a.starved == 0
    silence = np.zeros(SAMPLE_RATE, np.float32)
    noise = 0.05 * np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE).astype(np.float32)
    for audio in (silence, noise):
        assert not speech_chunks(reference.probabilities(audio), reference.settings).any()

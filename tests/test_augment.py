"""Augmentation: the F0 change moves pitch but keeps the formants; tilt and the label-directed
F0 ranges do what the settings say."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from voicegender_training.augment import AugmentSettings, augment, change_f0, spectral_tilt

SR = 16000
FORMANTS = (700.0, 1220.0, 2600.0)


def vowel(f0: float, seconds: float = 1.0) -> np.ndarray:
    """A glottal pulse train with slight vibrato through three formant resonators (an /a/)."""
    t = np.arange(int(seconds * SR)) / SR
    phase = np.cumsum(f0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)) / SR)
    x = (np.diff(np.floor(phase), prepend=0) > 0).astype(float)
    for f in FORMANTS:
        r = np.exp(-np.pi * 80 / SR)
        x = lfilter([1.0], [1, -2 * r * np.cos(2 * np.pi * f / SR), r * r], x)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def median_f0(x: np.ndarray) -> float:
    """Autocorrelation pitch of the middle 0.5 s (60-400 Hz)."""
    mid = x[len(x) // 4 : 3 * len(x) // 4].astype(float)
    ac = np.correlate(mid, mid, "full")[len(mid) - 1 :]
    lo, hi = SR // 400, SR // 60
    return SR / (lo + int(np.argmax(ac[lo:hi])))


def envelope_peaks(x: np.ndarray) -> list[float]:
    """Frequencies of the three strongest peaks of the cepstrally smoothed spectrum (the formants)."""
    spec = np.log(np.abs(np.fft.rfft(x.astype(float) * np.hanning(len(x)))) + 1e-9)
    cep = np.fft.irfft(spec)
    cep[30:-30] = 0  # keep the envelope, drop the harmonics
    smooth = np.fft.rfft(cep).real[: len(spec)]
    f = np.fft.rfftfreq(len(x), 1 / SR)
    is_peak = (smooth[1:-1] > smooth[:-2]) & (smooth[1:-1] >= smooth[2:]) & (f[1:-1] < 4000)
    peaks = np.flatnonzero(is_peak) + 1
    return sorted(f[i] for i in sorted(peaks, key=lambda i: -smooth[i])[:3])


@pytest.mark.parametrize("semitones", [-5.0, 4.0, 8.0])
def test_change_f0_moves_pitch_and_keeps_formants(semitones: float) -> None:
    x = vowel(120.0)
    y = change_f0(x, semitones)
    assert y.shape == x.shape and y.dtype == np.float32
    assert median_f0(y) / median_f0(x) == pytest.approx(2 ** (semitones / 12), rel=0.04)
    for before, after in zip(envelope_peaks(x), envelope_peaks(y), strict=True):
        assert after == pytest.approx(before, abs=150)


def test_plain_resampling_would_move_the_formants() -> None:
    """The check above can fail: a speed-up (what plain pitch shifting does) moves the formants."""
    x = vowel(120.0, 2.0)
    factor = 2 ** (8 / 12)
    sped = np.interp(np.arange(0, len(x), factor), np.arange(len(x)), x)[:SR].astype(np.float32)
    assert envelope_peaks(sped)[0] > envelope_peaks(x[:SR])[0] * 1.3


def test_spectral_tilt_boosts_highs_and_keeps_lows() -> None:
    x = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    y = spectral_tilt(x, 3.0)
    f = np.fft.rfftfreq(SR, 1 / SR)

    def band_db(a: np.ndarray, lo: float, hi: float) -> float:
        p = np.abs(np.fft.rfft(a)) ** 2
        return 10 * np.log10(p[(f >= lo) & (f < hi)].sum())

    assert band_db(y, 100, 450) - band_db(x, 100, 450) == pytest.approx(0.0, abs=0.01)
    # 3 dB per octave: 4 kHz is three octaves above 500 Hz.
    assert band_db(y, 3900, 4100) - band_db(x, 3900, 4100) == pytest.approx(9.0, abs=0.3)


@pytest.mark.parametrize("female", [False, True])
def test_augment_moves_pitch_only_towards_the_other_gender(female: bool) -> None:
    only_f0 = AugmentSettings(p_noise=0, p_reverb=0, p_eq=0, p_tilt=0, p_f0=1.0)
    x = vowel(210.0 if female else 110.0)
    rng = np.random.default_rng(3)
    ratios = [median_f0(augment(x, only_f0, rng, female)) / median_f0(x) for _ in range(6)]
    lo, hi = (2 ** (st / 12) for st in (only_f0.female_f0_semitones if female else only_f0.male_f0_semitones))
    assert all(lo * 0.97 <= r <= hi * 1.03 for r in ratios)
    assert (min(ratios) < 0.9) if female else (max(ratios) > 1.1)


def test_augment_without_a_label_keeps_pitch() -> None:
    only_f0 = AugmentSettings(p_noise=0, p_reverb=0, p_eq=0, p_tilt=0, p_f0=1.0)
    x = vowel(110.0)
    y = augment(x, only_f0, np.random.default_rng(0))
    assert median_f0(y) == pytest.approx(median_f0(x), rel=0.02)

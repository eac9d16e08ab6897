"""Audio augmentation that helps a model trained on read audiobooks hear other rooms, microphones and
ways of speaking.

Noise, gain, room reverb, microphone EQ / band-limiting, vocal-effort tilt, and a formant-preserving
F0 change that moves each voice only *towards* the other gender's pitch range (men up, as in shouting
or excitement; women down, as in sad or tired speech). Plain pitch shifting or speed changes are never
used: they move the formants too, the very cue (vocal tract length) that keeps such speech recognisable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

SR = 16000


@dataclass(frozen=True)
class AugmentSettings:
    """How often and how strongly each augmentation is applied."""

    p_noise: float = 0.7
    """Probability of additive noise (white, pink or brown)."""
    snr_db: tuple[float, float] = (3.0, 30.0)
    """Range of signal-to-noise ratios for additive noise."""
    p_reverb: float = 0.4
    """Probability of convolving with a synthetic room impulse response."""
    rt60: tuple[float, float] = (0.15, 0.8)
    """Range of reverberation times in seconds."""
    p_eq: float = 0.6
    """Probability of a random microphone EQ with high-pass and low-pass band-limiting."""
    gain_db: tuple[float, float] = (-20.0, 10.0)
    """Range of overall gain; the result is clipped to [-1, 1] like a real ADC."""
    p_f0: float = 0.5
    """Probability of a formant-preserving F0 change (WORLD vocoder; needs the clip's label)."""
    male_f0_semitones: tuple[float, float] = (0.0, 8.0)
    """Range of F0 change for male voices: aroused male speech reaches typical female pitch."""
    female_f0_semitones: tuple[float, float] = (-5.0, 0.0)
    """Range of F0 change for female voices: calm or sad female speech reaches high male pitch."""
    p_tilt: float = 0.5
    """Probability of a spectral tilt change, as raised or lowered vocal effort gives."""
    tilt_db_per_octave: tuple[float, float] = (-3.0, 3.0)
    """Range of tilt above 500 Hz, in dB per octave."""


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1] if n > 1 else 1.0
    spec *= f ** (-exponent / 2)
    noise = np.fft.irfft(spec, n)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    exponent = rng.choice([0.0, 1.0, 2.0])
    active = audio[np.abs(audio) > 0.1 * np.abs(audio).max()] if audio.size and audio.any() else audio
    rms = float(np.sqrt(np.mean(active**2))) if active.size else 0.0
    return audio + coloured_noise(audio.size, exponent, rng) * rms * 10 ** (-snr_db / 20)


def room_impulse_response(rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Direct path plus exponentially decaying noise (a diffuse tail) with the given RT60."""
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    delay = int(rng.uniform(0.002, 0.02) * SR)  # gap before the first reflections
    tail[:delay] = 0.0
    rir = tail * rng.uniform(0.2, 0.6) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    rir[0] = 1.0
    return rir.astype(np.float32)


def reverb(audio: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    wet = fftconvolve(audio, room_impulse_response(rt60, rng))[: audio.size]
    return (wet * np.sqrt(np.sum(audio**2) / (np.sum(wet**2) + 1e-12))).astype(np.float32)


def microphone_eq(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random smooth frequency response with a high-pass (50-300 Hz) and a low-pass (3-8 kHz)."""
    f = np.fft.rfftfreq(audio.size, 1 / SR)
    hp, lp = rng.uniform(50, 300), rng.uniform(3000, 8000)
    order_hp, order_lp = rng.integers(1, 4), rng.integers(2, 6)
    response = 1 / np.sqrt(1 + (hp / np.maximum(f, 1.0)) ** (2 * order_hp))
    response = response / np.sqrt(1 + (f / lp) ** (2 * order_lp))
    # Smooth ripple: a few random bumps in dB over log frequency, as cheap microphones have.
    logf = np.log2(np.maximum(f, 20.0))
    ripple_db = np.zeros_like(f)
    for _ in range(3):
        centre, width, gain = rng.uniform(6, 13), rng.uniform(0.3, 1.5), rng.uniform(-6, 6)
        ripple_db += gain * np.exp(-0.5 * ((logf - centre) / width) ** 2)
    response = response * 10 ** (ripple_db / 20)
    return np.fft.irfft(np.fft.rfft(audio) * response, audio.size).astype(np.float32)


def change_f0(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Resynthesise with F0 moved by ``semitones`` and the spectral envelope (formants) kept."""
    import pyworld

    x = np.ascontiguousarray(audio, np.float64)
    f0, t = pyworld.dio(x, SR, frame_period=5.0)
    f0 = pyworld.stonemask(x, f0, t, SR)
    envelope = pyworld.cheaptrick(x, f0, t, SR)
    aperiodicity = pyworld.d4c(x, f0, t, SR)
    y = pyworld.synthesize(f0 * 2 ** (semitones / 12), envelope, aperiodicity, SR, 5.0)
    y = np.pad(y, (0, max(0, audio.size - y.size)))[: audio.size]
    return (y * np.sqrt(np.sum(x**2) / (np.sum(y**2) + 1e-12))).astype(np.float32)


def spectral_tilt(audio: np.ndarray, db_per_octave: float) -> np.ndarray:
    """Tilt the spectrum above 500 Hz: louder, effortful speech has relatively more high-frequency energy."""
    f = np.fft.rfftfreq(audio.size, 1 / SR)
    gain_db = db_per_octave * np.log2(np.maximum(f, 500.0) / 500.0)
    return np.fft.irfft(np.fft.rfft(audio) * 10 ** (gain_db / 20), audio.size).astype(np.float32)


def augment(
    audio: np.ndarray, settings: AugmentSettings, rng: np.random.Generator, female: bool | None = None
) -> np.ndarray:
    """One random augmented copy of a 16 kHz clip (same length); ``female`` enables the F0 change."""
    s = settings
    out = audio.astype(np.float32, copy=True)
    if female is not None and rng.random() < s.p_f0:
        out = change_f0(out, rng.uniform(*(s.female_f0_semitones if female else s.male_f0_semitones)))
    if rng.random() < s.p_tilt:
        out = spectral_tilt(out, rng.uniform(*s.tilt_db_per_octave))
    if rng.random() < s.p_reverb:
        out = reverb(out, rng.uniform(*s.rt60), rng)
    if rng.random() < s.p_eq:
        out = microphone_eq(out, rng)
    if rng.random() < s.p_noise:
        out = add_noise(out, rng.uniform(*s.snr_db), rng)
    peak = np.abs(out).max() + 1e-9
    out *= 10 ** (rng.uniform(*s.gain_db) / 20) * 0.5 / peak
    return np.clip(out, -1.0, 1.0).astype(np.float32)

"""Polyphase resampler: parity with scipy.signal.resample_poly, streaming == batch, filter behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal

from voicegender.errors import VoicegenderError
from voicegender.resample import StreamingResampler, resample
from voicegender.wavio import read_wav

DEVICE_RATES = [8000, 11025, 22050, 32000, 44100, 48000]
OTHER_RATES = [4000, 12000, 24000, 88200, 96000]
PARITY_ATOL = 5e-6  # measured max abs diff ~1e-6 for signals within [-1, 1]


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, n).astype(np.float32)


@pytest.fixture(scope="module")
def speech(fixtures_dir) -> np.ndarray:
    audio, sr = read_wav(fixtures_dir / "male_1320.wav")
    assert sr == 16000
    return audio[: 2 * sr]


def _reference(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    g = math.gcd(sr_in, sr_out)
    return scipy.signal.resample_poly(x, sr_out // g, sr_in // g)


@pytest.mark.parametrize("sr", DEVICE_RATES + OTHER_RATES)
def test_matches_resample_poly_on_noise(sr: int) -> None:
    x = _noise(sr + 123, seed=sr)
    ref = _reference(x, sr, 16000)
    y = resample(x, sr)
    assert y.dtype == np.float32
    assert y.shape == ref.shape == (math.ceil(x.size * 16000 / sr),)
    np.testing.assert_allclose(y, ref, rtol=0, atol=PARITY_ATOL)


@pytest.mark.parametrize("sr", DEVICE_RATES)
def test_matches_resample_poly_on_speech(sr: int, speech: np.ndarray) -> None:
    # Speech-like input at sr: the 16 kHz recording brought to sr by scipy, then back by both.
    x = _reference(speech, 16000, sr).astype(np.float32)
    ref = _reference(x, sr, 16000)
    y = resample(x, sr)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=0, atol=PARITY_ATOL)


@pytest.mark.parametrize(
    ("sr_in", "sr_out"), [(16000, 44100), (16000, 48000), (44100, 48000), (48000, 22050)]
)
def test_matches_resample_poly_between_other_rates(sr_in: int, sr_out: int) -> None:
    x = _noise(sr_in // 2 + 5, seed=1)
    np.testing.assert_allclose(
        resample(x, sr_in, sr_out), _reference(x, sr_in, sr_out), rtol=0, atol=PARITY_ATOL
    )


@pytest.mark.parametrize("sr", [8000, 11025, 44100, 48000])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 29, 100, 441])
def test_short_inputs_match_resample_poly(sr: int, n: int) -> None:
    x = _noise(n, seed=n)
    y = resample(x, sr)
    assert y.shape == (math.ceil(n * 16000 / sr),)
    if n:
        np.testing.assert_allclose(y, _reference(x, sr, 16000), rtol=0, atol=PARITY_ATOL)


def test_equal_rates_return_the_input_itself() -> None:
    x = _noise(1000)
    assert resample(x, 16000) is x
    y = resample(x.astype(np.float64), 16000)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)


def test_accepts_a_single_channel_column_and_integral_float_rates() -> None:
    x = _noise(4410)
    np.testing.assert_array_equal(resample(x[:, None], 44100.0), resample(x, 44100))


def _stream(x: np.ndarray, sr: int, sizes: list[int] | int) -> np.ndarray:
    r = StreamingResampler(sr)
    out, i, k = [], 0, 0
    while i < x.size:
        size = sizes if isinstance(sizes, int) else sizes[k % len(sizes)]
        out.append(r.push(x[i : i + size]))
        i, k = i + size, k + 1
    out.append(r.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("sr", [*DEVICE_RATES, 16000, 96000])
@pytest.mark.parametrize("chunk", [1, 7, 160, 1000, 16000])
def test_streaming_equals_batch_for_fixed_chunk_sizes(sr: int, chunk: int) -> None:
    x = _noise(sr // 4 if chunk == 1 else sr + 17, seed=chunk)
    np.testing.assert_allclose(_stream(x, sr, chunk), resample(x, sr), rtol=0, atol=1e-6)


@pytest.mark.parametrize("sr", DEVICE_RATES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_batch_for_random_chunkings(sr: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = _noise(int(sr * 1.3), seed=seed)
    sizes = [int(s) for s in rng.choice([0, 1, 2, 3, 50, 441, 480, 999, 5000, 20000], size=64)]
    np.testing.assert_allclose(_stream(x, sr, sizes), resample(x, sr), rtol=0, atol=1e-6)


@pytest.mark.parametrize("sr", [8000, 44100, 48000])
def test_streaming_output_lags_input_by_under_1_5_ms(sr: int) -> None:
    r = StreamingResampler(sr)
    x = _noise(sr)
    emitted = 0
    for i in range(0, x.size, 100):
        emitted += r.push(x[i : i + 100]).size
        due = math.ceil(min(i + 100, x.size) * 16000 / sr)
        assert 0 <= due - emitted <= 24  # 24 samples = 1.5 ms at 16 kHz
    assert r.samples_out == emitted
    assert r.samples_in == x.size


def test_flush_resets_for_a_new_stream() -> None:
    r = StreamingResampler(44100)
    x = _noise(5000)
    first = np.concatenate([r.push(x), r.flush()])
    second = np.concatenate([r.push(x[:1234]), r.push(x[1234:]), r.flush()])
    np.testing.assert_array_equal(first, second)
    assert r.samples_in == 0 and r.flush().size == 0


def test_streaming_identity_passes_chunks_through() -> None:
    r = StreamingResampler(16000, 16000)
    x = _noise(321)
    assert r.push(x) is x
    assert r.flush().size == 0


def test_streaming_memory_stays_bounded() -> None:
    r = StreamingResampler(44100)
    for seed in range(20):
        r.push(_noise(44100, seed=seed))
        assert r._buf.size < 200  # only about one filter window (56 taps) of input is kept


def _peak_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.argmax(spec) * sr / y.size)


@pytest.mark.parametrize(("sr", "freq"), [(44100, 1000.0), (48000, 220.0), (8000, 3000.0), (22050, 5500.0)])
def test_tone_frequency_and_level_are_preserved(sr: int, freq: float) -> None:
    t = np.arange(2 * sr) / sr
    y = resample(np.sin(2 * np.pi * freq * t).astype(np.float32) * 0.5, sr)[100:-100]
    assert abs(_peak_hz(y, 16000) - freq) <= 16000 / y.size
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


@pytest.mark.parametrize("freq", [10000.0, 12000.0, 15000.0, 20000.0, 23000.0])
def test_energy_above_8khz_is_suppressed_when_downsampling_from_48k(freq: float) -> None:
    t = np.arange(48000) / 48000
    y = resample(np.sin(2 * np.pi * freq * t).astype(np.float32), 48000)[100:-100]
    level_db = 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)) / np.sqrt(0.5))
    assert level_db < -50  # would alias into 1..6 kHz at full level without the filter


def test_white_noise_above_8khz_does_not_alias() -> None:
    # Noise with content only in 10-24 kHz: after resampling to 16 kHz almost nothing is left.
    x = _noise(48000 * 2, seed=5).astype(np.float64)
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.size, 1 / 48000) < 10000] = 0
    high = np.fft.irfft(spec, n=x.size).astype(np.float32)
    y = resample(high, 48000)[100:-100]
    assert np.mean(y.astype(np.float64) ** 2) < 1e-5 * np.mean(high.astype(np.float64) ** 2)


@pytest.mark.parametrize("rate", [0, -16000, 1000, 3999, 384001, 10**9, 44100.5, float("nan"), float("inf")])
def test_bad_rates_raise_naming_the_rate(rate: float) -> None:
    with pytest.raises(VoicegenderError, match="sample rate") as err:
        resample(_noise(100), rate)
    assert str(rate) in str(err.value) or repr(rate) in str(err.value)
    with pytest.raises(VoicegenderError):
        StreamingResampler(16000, rate)


@pytest.mark.parametrize("rate", ["44100", None, True])
def test_non_numeric_rates_raise(rate: object) -> None:
    with pytest.raises(VoicegenderError, match="sample rate"):
        StreamingResampler(rate)  # type: ignore[arg-type]


def test_overly_fine_ratio_is_refused() -> None:
    # 383999 and 16000 are coprime: the filter would need 7.7 million taps.
    with pytest.raises(VoicegenderError, match="383999"):
        resample(_noise(100), 383999)


def test_multichannel_input_is_refused() -> None:
    with pytest.raises(VoicegenderError, match="mono"):
        resample(np.zeros((100, 2), dtype=np.float32), 44100)
    with pytest.raises(VoicegenderError, match="mono"):
        StreamingResampler(44100).push(np.zeros((100, 2), dtype=np.float32))

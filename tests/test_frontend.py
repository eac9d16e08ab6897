"""Numpy front end: streaming == batch, librosa parity, edge cases, settings, import hygiene."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegender.errors import VoicegenderError
from voicegender.frontend import (
    STREAM_TOLERANCE,
    Frontend,
    FrontendSettings,
    StreamingFrontend,
    dct_matrix,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
)
from voicegender.wavio import read_wav

librosa = pytest.importorskip("librosa")

S = FrontendSettings()
FLOOR_DB = 10 * np.log10(S.log_floor)  # -100 dB
STREAM_RTOL, STREAM_ATOL = STREAM_TOLERANCE  # one float32 spacing + the float64 bound (see frontend)
LIBROSA_ATOL = 1e-3  # dB / MFCC units; measured max ~1.5e-5 (log-mel) and ~5e-5 (MFCC), librosa's float32
LIBROSA_OFFSET = (S.n_fft - S.win_length) // 2  # librosa centres the 400-sample window in 512 samples


def _noise(n: int, seed: int = 0, scale: float = 0.5) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def demo(fixtures_dir: Path) -> np.ndarray:
    """Male speech, 1.5 s of digital silence, female speech (11.5 s)."""
    audio, sr = read_wav(fixtures_dir / "demo_male_then_female.wav")
    assert sr == S.sample_rate
    return audio


@pytest.fixture(scope="module")
def fe() -> Frontend:
    return Frontend()


def _stream(chunks: list[np.ndarray], kind: str = "mfcc") -> tuple[np.ndarray, int]:
    sf = StreamingFrontend(kind=kind)
    n_out = S.n_mfcc if kind == "mfcc" else S.n_mels
    outs = []
    for c in chunks:
        out = sf.push(c)
        assert out.dtype == np.float32 and out.ndim == 2 and out.shape[1] == n_out
        outs.append(out)
    return np.concatenate(outs), sf.frames_emitted


def _chunked(audio: np.ndarray, size: int) -> list[np.ndarray]:
    return [audio[i : i + size] for i in range(0, audio.size, size)]


# --- streaming == batch -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 160, 1000, 1600, 16000])
@pytest.mark.parametrize("kind", ["mfcc", "log_mel"])
def test_streaming_equals_batch_fixed_chunks(demo: np.ndarray, fe: Frontend, size: int, kind: str) -> None:
    # Chunks of 1 sample are slow in Python: 2 s of audio is plenty for them.
    audio = demo[: 2 * S.sample_rate] if size == 1 else demo
    batch = getattr(fe, kind)(audio)
    streamed, emitted = _stream(_chunked(audio, size), kind)
    assert streamed.shape == batch.shape
    assert emitted == batch.shape[0] == S.n_frames(audio.size)
    np.testing.assert_allclose(streamed, batch, rtol=STREAM_RTOL, atol=STREAM_ATOL)


@pytest.mark.parametrize("seed", range(5))
def test_streaming_equals_batch_random_chunks(demo: np.ndarray, fe: Frontend, seed: int) -> None:
    # Log-uniform sizes from 1 sample to 3 s: exercises the buffered and the large-chunk paths.
    rng = np.random.default_rng(seed)
    audio = demo[: 6 * S.sample_rate]
    cuts, pos = [0], 0
    while pos < audio.size:
        pos += int(np.exp(rng.uniform(0, np.log(3 * S.sample_rate))))
        cuts.append(min(pos, audio.size))
    chunks = [audio[a:b] for a, b in itertools.pairwise(cuts)]
    streamed, emitted = _stream(chunks)
    batch = fe.mfcc(audio)
    assert streamed.shape == batch.shape and emitted == batch.shape[0]
    np.testing.assert_allclose(streamed, batch, rtol=STREAM_RTOL, atol=STREAM_ATOL)


_SHORT = _noise(S.sample_rate // 2, seed=7)


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(0, _SHORT.size), max_size=30))
def test_streaming_equals_batch_any_chunking(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), _SHORT.size]
    chunks = [_SHORT[a:b] for a, b in itertools.pairwise(bounds)]  # includes empty chunks
    streamed, emitted = _stream(chunks, "log_mel")
    batch = Frontend().log_mel(_SHORT)
    assert streamed.shape == batch.shape and emitted == batch.shape[0]
    np.testing.assert_allclose(streamed, batch, rtol=STREAM_RTOL, atol=STREAM_ATOL)


def test_streaming_reset_starts_a_new_stream(demo: np.ndarray, fe: Frontend) -> None:
    sf = StreamingFrontend()
    sf.push(demo[:12345])
    sf.reset()
    assert sf.frames_emitted == 0
    streamed = np.concatenate([sf.push(c) for c in _chunked(demo[:32000], 1600)])
    np.testing.assert_allclose(streamed, fe.mfcc(demo[:32000]), rtol=STREAM_RTOL, atol=STREAM_ATOL)


def test_streaming_frame_timing() -> None:
    sf = StreamingFrontend()
    assert sf.push(np.zeros(S.win_length - 1, np.float32)).shape == (0, S.n_mfcc)
    assert sf.push(np.zeros(1, np.float32)).shape == (1, S.n_mfcc)  # frame 0 = samples [0, 400)
    assert sf.push(np.zeros(S.hop_length - 1, np.float32)).shape == (0, S.n_mfcc)
    assert sf.push(np.zeros(1, np.float32)).shape == (1, S.n_mfcc)  # frame 1 = samples [160, 560)
    assert sf.push(np.zeros(0, np.float32)).shape == (0, S.n_mfcc)
    assert sf.frames_emitted == 2


def test_streaming_accepts_column_blocks_and_float64(demo: np.ndarray) -> None:
    audio = demo[:16000]
    flat, _ = _stream(_chunked(audio, 1600))
    column, _ = _stream([c[:, None] for c in _chunked(audio, 1600)])  # sounddevice's (frames, 1)
    wide, _ = _stream([c.astype(np.float64) for c in _chunked(audio, 1600)])
    listed, _ = _stream([c.tolist() for c in _chunked(audio, 1600)])
    np.testing.assert_array_equal(column, flat)
    np.testing.assert_array_equal(wide, flat)
    np.testing.assert_array_equal(listed, flat)


@pytest.mark.parametrize(
    ("chunk", "problem"),
    [
        (np.zeros((160, 2), np.float32), "(n,) or (n, 1)"),
        (np.zeros((2, 80), np.float32), "(n,) or (n, 1)"),
        (np.zeros(160, np.int16), "int16"),
        (np.zeros(160, np.complex64), "complex64"),
    ],
)
def test_streaming_rejects_bad_chunks(chunk: np.ndarray, problem: str) -> None:
    sf = StreamingFrontend()
    sf.push(np.zeros(300, np.float32))
    with pytest.raises(VoicegenderError, match="streaming front end") as err:
        sf.push(chunk)
    assert problem in str(err.value)
    # The stream is unchanged: 100 more samples complete frame 0.
    assert sf.push(np.zeros(100, np.float32)).shape == (1, S.n_mfcc)


def test_streaming_rejects_unknown_kind() -> None:
    with pytest.raises(VoicegenderError, match="kind"):
        StreamingFrontend(kind="spectrogram")


# --- librosa parity ------------------------------------------------------------------------------


def _librosa_log_mel(audio: np.ndarray) -> np.ndarray:
    power = librosa.feature.melspectrogram(
        y=audio, sr=16000, n_fft=512, hop_length=160, win_length=400, center=False,
        n_mels=40, fmin=60, fmax=8000, power=2.0,
    )  # fmt: skip
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)  # (n_mels, n_frames)


def _parity_signals(fixtures_dir: Path) -> dict[str, np.ndarray]:
    signals = {name: read_wav(fixtures_dir / f"{name}.wav")[0] for name in ("male_1320", "female_3575")}
    signals["noise"] = _noise(3 * S.sample_rate, seed=3)
    signals["quiet noise"] = _noise(3 * S.sample_rate, seed=4, scale=1e-4)
    return signals


@pytest.mark.parametrize("name", ["male_1320", "female_3575", "noise", "quiet noise"])
def test_log_mel_and_mfcc_match_librosa(fixtures_dir: Path, fe: Frontend, name: str) -> None:
    audio = _parity_signals(fixtures_dir)[name]
    ref_db = _librosa_log_mel(audio)
    ref_mfcc = librosa.feature.mfcc(S=ref_db, n_mfcc=S.n_mfcc, dct_type=2, norm="ortho")
    # librosa's frame i is our frame i of audio[56:]: both hold the window over the same samples.
    ours_db = fe.log_mel(audio[LIBROSA_OFFSET:])
    ours_mfcc = fe.mfcc(audio[LIBROSA_OFFSET:])
    n = ref_db.shape[1]
    assert 0 <= ours_db.shape[0] - n <= 1  # librosa needs 56 more samples after the last window
    np.testing.assert_allclose(ours_db[:n], ref_db.T, rtol=0, atol=LIBROSA_ATOL)
    np.testing.assert_allclose(ours_mfcc[:n], ref_mfcc.T, rtol=0, atol=LIBROSA_ATOL)


def test_mel_filterbank_matches_librosa() -> None:
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=60, fmax=8000)
    ours = mel_filterbank(S)
    assert ours.shape == (S.n_fft // 2 + 1, S.n_mels) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref.T, rtol=1e-5, atol=1e-9)


def test_mel_scale_matches_librosa() -> None:
    hz = np.array([0.0, 60.0, 500.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0])
    np.testing.assert_allclose(hz_to_mel(hz), librosa.hz_to_mel(hz, htk=False), rtol=1e-12)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)
    assert float(hz_to_mel(1000.0)) == pytest.approx(15.0)


def test_dct_matrix_is_orthonormal_dct2() -> None:
    d = dct_matrix(S.n_mels, S.n_mfcc)
    np.testing.assert_allclose(
        d, scipy.fft.dct(np.eye(S.n_mels), type=2, norm="ortho")[:, : S.n_mfcc], atol=1e-6
    )
    np.testing.assert_allclose(d.T @ d, np.eye(S.n_mfcc), atol=1e-6)


def test_mfcc_is_dct_of_log_mel(demo: np.ndarray, fe: Frontend) -> None:
    audio = demo[: 3 * S.sample_rate]
    log_mel = fe.log_mel(audio).astype(np.float64)
    dct = scipy.fft.dct(np.eye(S.n_mels), type=2, norm="ortho")[:, : S.n_mfcc]
    # In float64, the only differences are the float32 roundings of each log-mel value (half a
    # spacing, <= 4e-6 dB below 128 dB) through the DCT (sum of |coefficients| <= 40 * sqrt(2 / 40)),
    # and of each MFCC (half a spacing, <= 3.1e-5 below 1024): < 1e-4 on any CPU.
    mfcc = fe.mfcc(audio)
    assert np.abs(log_mel).max() < 128 and np.abs(mfcc).max() < 1024
    np.testing.assert_allclose(mfcc, log_mel @ dct, rtol=0, atol=1e-4)


def test_power_spectrum_and_frames(fe: Frontend) -> None:
    audio = _noise(5000, seed=5)
    frames = fe.frames(audio)
    assert frames.shape == (S.n_frames(audio.size), S.win_length) and not frames.flags.writeable
    np.testing.assert_array_equal(frames[3], audio[3 * S.hop_length : 3 * S.hop_length + S.win_length])
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(S.win_length) / S.win_length)
    ref = np.abs(np.fft.rfft(frames.astype(np.float64) * hann, n=S.n_fft)) ** 2
    power = fe.power_spectrum(frames)
    assert power.dtype == np.float32 and power.shape == (frames.shape[0], S.n_fft // 2 + 1)
    np.testing.assert_allclose(power, ref, rtol=1e-5, atol=1e-8)
    with pytest.raises(VoicegenderError, match=r"\(n, 400\)"):
        fe.power_spectrum(frames[:, :300])


@pytest.mark.parametrize("n_frames", [1, 2, 24, 25, 26, 63, 64, 65, 128, 129, 200])
def test_any_frame_count_matches_frame_by_frame(fe: Frontend, n_frames: int) -> None:
    # Batch work is split into blocks of frames and row slices: no frame may depend on its neighbours.
    audio = _noise((n_frames - 1) * S.hop_length + S.win_length, seed=n_frames)
    whole = fe.mfcc(audio)
    assert whole.shape == (n_frames, S.n_mfcc)
    single = np.concatenate([fe.mfcc(f) for f in fe.frames(audio)])
    np.testing.assert_allclose(whole, single, rtol=STREAM_RTOL, atol=STREAM_ATOL)


def _kernel_route():
    """numpy >= 2's private pocketfft rfft ufunc, called directly; None where it does not exist."""
    try:
        from numpy.fft import _pocketfft_umath as kernels
    except ImportError:
        return None
    kernel = getattr(kernels, "rfft_n_even", None)
    return None if kernel is None else lambda x, out: kernel(x, 1.0, out=out)


def _out_route():
    """np.fft.rfft(out=) (numpy >= 2); None on numpy 1.x, whose rfft has no ``out``."""
    try:
        np.fft.rfft(np.ones(S.n_fft), out=np.empty(S.n_fft // 2 + 1, np.complex128))
    except TypeError:
        return None
    return lambda x, out: np.fft.rfft(x, out=out)


def _reference_mfcc(audio: np.ndarray) -> np.ndarray:
    """float64 MFCCs from numpy's rfft, librosa's mel filters and scipy's DCT: no front-end code."""
    n = 1 + (audio.size - S.win_length) // S.hop_length
    frames = audio.astype(np.float32).astype(np.float64)[
        np.arange(S.win_length)[None, :] + S.hop_length * np.arange(n)[:, None]
    ]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(S.win_length) / S.win_length)
    power = np.abs(np.fft.rfft(frames * hann, n=S.n_fft)) ** 2
    mel = librosa.filters.mel(
        sr=S.sample_rate, n_fft=S.n_fft, n_mels=S.n_mels, fmin=S.fmin, fmax=S.fmax, dtype=np.float64
    )
    db = 10 * np.log10(np.maximum(power @ mel.T, S.log_floor))
    return db @ scipy.fft.dct(np.eye(S.n_mels), type=2, norm="ortho")[:, : S.n_mfcc]


FFT_ROUTES = {"kernel": _kernel_route, "rfft out=": _out_route, "rfft copy": lambda: None}


def _default_route(monkeypatch: pytest.MonkeyPatch, audio: np.ndarray) -> str:
    """Which route a default Frontend takes, seen from the np.fft.rfft calls its mfcc makes."""
    fe = Frontend()
    calls: list[bool] = []  # per call: was out= given?
    rfft = np.fft.rfft

    def counting_rfft(*args, **kwargs):
        calls.append("out" in kwargs)
        return rfft(*args, **kwargs)

    monkeypatch.setattr(np.fft, "rfft", counting_rfft)
    fe.mfcc(audio)
    monkeypatch.setattr(np.fft, "rfft", rfft)
    if not calls:
        return "kernel"
    assert len(set(calls)) == 1, calls
    return "rfft out=" if calls[0] else "rfft copy"


def test_default_frontend_takes_the_fastest_fft_route(
    monkeypatch: pytest.MonkeyPatch, demo: np.ndarray
) -> None:
    # The private kernel saves np.fft.rfft's ~2 us wrapper per hop; out= saves a copy (numpy 1.x: neither).
    fastest = next(name for name, make in FFT_ROUTES.items() if name == "rfft copy" or make() is not None)
    assert _default_route(monkeypatch, demo[:4000]) == fastest


@pytest.mark.parametrize("route", list(FFT_ROUTES))
def test_result_does_not_depend_on_the_fft_route(demo: np.ndarray, route: str) -> None:
    # numpy >= 2: rfft kernel or np.fft.rfft(out=); numpy 1.x (armv7 Pis): np.fft.rfft's own array.
    rfft_into = FFT_ROUTES[route]()
    if route != "rfft copy" and rfft_into is None:
        pytest.skip(f"numpy {np.__version__} has no {route} route")
    audio = demo[: 2 * S.sample_rate]
    fe = Frontend()
    fe._rfft_into = rfft_into
    got = fe.mfcc(audio)
    # Both sides work in float64 (relative errors ~1e-15) and the front end rounds once to float32:
    # at most one float32 spacing apart, whatever the CPU.
    np.testing.assert_allclose(got, _reference_mfcc(audio), rtol=2.0**-23, atol=1e-6)
    # Every route runs the same pocketfft transform on the same input: bit-identical features.
    np.testing.assert_array_equal(got, Frontend().mfcc(audio))
    one_by_one = np.concatenate([fe.mfcc(f) for f in fe.frames(audio[:4000])])  # the few-frames path
    np.testing.assert_allclose(one_by_one, got[:23], rtol=STREAM_RTOL, atol=STREAM_ATOL)


def test_frontend_shared_between_threads(demo: np.ndarray) -> None:
    shared = Frontend()
    parts = [demo[i * 16000 : (i + 2) * 16000] for i in range(6)]
    expected = [Frontend().mfcc(p) for p in parts]
    results: dict[int, list[np.ndarray]] = {}

    def work(i: int) -> None:
        results[i] = [shared.mfcc(parts[i]) for _ in range(20)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(parts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, exp in enumerate(expected):
        for got in results[i]:
            np.testing.assert_array_equal(got, exp)


# --- edge cases ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_samples", "n_frames"), [(0, 0), (1, 0), (399, 0), (400, 1), (559, 1), (560, 2)])
def test_frame_counts(fe: Frontend, n_samples: int, n_frames: int) -> None:
    audio = _noise(n_samples)
    assert fe.log_mel(audio).shape == (n_frames, S.n_mels)
    assert fe.mfcc(audio).shape == (n_frames, S.n_mfcc)
    assert fe.mfcc(audio).dtype == np.float32
    assert fe.frames(audio).shape == (n_frames, S.win_length)
    assert S.n_frames(n_samples) == n_frames


def test_digital_silence_is_the_floor(fe: Frontend) -> None:
    silence = np.zeros(4000, np.float32)
    log_mel = fe.log_mel(silence)
    assert pytest.approx(-100.0) == FLOOR_DB
    np.testing.assert_array_equal(log_mel, np.float32(FLOOR_DB))
    mfcc = fe.mfcc(silence)
    assert np.isfinite(mfcc).all()
    np.testing.assert_allclose(mfcc[:, 0], FLOOR_DB * np.sqrt(S.n_mels), rtol=1e-6)
    np.testing.assert_allclose(mfcc[:, 1:], 0.0, atol=1e-3)


@pytest.mark.parametrize("amplitude", [1.0, 1.5, 1e3, 1e30])
def test_clipped_and_huge_audio_is_finite(fe: Frontend, amplitude: float) -> None:
    square = np.where(np.sin(2 * np.pi * 220 * np.arange(8000) / 16000) >= 0, amplitude, -amplitude)
    for out in (fe.log_mel(square), fe.mfcc(square)):
        assert np.isfinite(out).all()
    assert fe.log_mel(square).max() > FLOOR_DB


def test_float_dtypes_are_rounded_to_float32(fe: Frontend) -> None:
    x64 = np.random.default_rng(1).uniform(-1, 1, 3000)
    x32 = x64.astype(np.float32)
    np.testing.assert_array_equal(fe.mfcc(x64), fe.mfcc(x32))
    np.testing.assert_array_equal(
        fe.mfcc(x32.astype(np.float16)), fe.mfcc(x32.astype(np.float16).astype(np.float32))
    )
    np.testing.assert_array_equal(fe.mfcc(list(x32)), fe.mfcc(x32))
    np.testing.assert_array_equal(fe.mfcc(x32[::-1]), fe.mfcc(x32[::-1].copy()))  # non-contiguous input


@pytest.mark.parametrize(
    ("audio", "problem"),
    [
        (np.zeros(1000, np.int16), "int16 / 32768"),
        (np.zeros(1000, np.int32), "int32"),
        (np.zeros(1000, bool), "bool"),
        (np.zeros(1000, np.complex128), "complex128"),
        (np.zeros((2, 1000), np.float32), "1-D"),
        (np.zeros((1000, 1), np.float32), "1-D"),
        (np.float32(0.5), "1-D"),
    ],
)
def test_bad_input_raises(fe: Frontend, audio: np.ndarray, problem: str) -> None:
    for method in (fe.log_mel, fe.mfcc, fe.frames):
        with pytest.raises(VoicegenderError, match="front end") as err:
            method(audio)
        assert problem in str(err.value)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_read_as_silence(fe: Frontend, bad: float) -> None:
    # Decision: a frame holding a NaN or infinite sample is all floor (like digital silence); other
    # frames are untouched and nothing raises, so a corrupt block cannot stop the daemon.
    clean = _noise(4000, seed=9)
    audio = clean.copy()
    audio[1000] = bad
    hit = [
        i for i in range(S.n_frames(audio.size)) if i * S.hop_length <= 1000 < i * S.hop_length + S.win_length
    ]
    assert hit == [4, 5, 6]
    log_mel = fe.log_mel(audio)
    np.testing.assert_array_equal(log_mel[hit], np.float32(FLOOR_DB))
    others = [i for i in range(log_mel.shape[0]) if i not in hit]
    np.testing.assert_array_equal(log_mel[others], fe.log_mel(clean)[others])
    assert np.isfinite(fe.mfcc(audio)).all()
    streamed, _ = _stream(_chunked(audio, 160), "log_mel")
    np.testing.assert_array_equal(streamed, log_mel)


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"sample_rate": 0}, "sample_rate"),
        ({"hop_length": 0}, "hop_length"),
        ({"hop_length": 500}, "hop_length <= win_length"),
        ({"win_length": 1024}, "win_length <= n_fft"),
        ({"fmin": -1.0}, "fmin"),
        ({"fmin": 8000.0}, "fmin < fmax"),
        ({"fmax": 9000.0}, "fmax <= sample_rate / 2"),
        ({"n_mfcc": 0}, "n_mfcc"),
        ({"n_mfcc": 41}, "n_mfcc <= n_mels"),
        ({"log_floor": 0.0}, "log_floor"),
        ({"log_floor": float("nan")}, "log_floor"),
        ({"win_length": "400"}, "win_length must be an integer"),
        ({"n_fft": 512.0}, "n_fft must be an integer"),
        ({"n_mels": True}, "n_mels must be an integer"),
        ({"fmax": None}, "fmax must be a number"),
        ({"fmin": float("inf")}, "fmin must be a number"),
        ({"fmax": float("nan")}, "fmax must be a number"),
        ({"sample_rate": 10**40}, "sample_rate must be an integer between"),
    ],
)
def test_bad_settings_raise(changes: dict, problem: str) -> None:
    with pytest.raises(VoicegenderError, match="front-end settings") as err:
        FrontendSettings(**changes)
    assert problem in str(err.value)


def test_settings_whose_mel_bands_are_empty_raise() -> None:
    with pytest.raises(VoicegenderError, match="n_mels=256"):
        Frontend(FrontendSettings(n_mels=256))


def test_settings_round_trip_and_unknown_keys() -> None:
    custom = FrontendSettings(hop_length=200, n_mels=64, fmin=50, n_mfcc=20)
    for s in (S, custom):
        assert FrontendSettings.from_dict(s.to_dict()) == s
    assert set(S.to_dict()) == {f.name for f in dataclasses.fields(FrontendSettings)}
    assert FrontendSettings.from_dict({"n_mfcc": 13}) == FrontendSettings(n_mfcc=13)
    with pytest.raises(VoicegenderError, match=r"unknown key.*n_ceps.*window"):
        FrontendSettings.from_dict({**S.to_dict(), "window": "hann", "n_ceps": 13})
    with pytest.raises(dataclasses.FrozenInstanceError):
        S.n_mels = 80  # type: ignore[misc]


def test_other_settings_work_end_to_end() -> None:
    s = FrontendSettings(
        sample_rate=8000, win_length=200, hop_length=80, n_fft=256, fmax=4000, n_mels=32, n_mfcc=13
    )
    audio = _noise(8000, seed=11)
    out = Frontend(s).mfcc(audio)
    assert out.shape == (s.n_frames(audio.size), 13) and np.isfinite(out).all()
    sf = StreamingFrontend(s)
    np.testing.assert_allclose(
        np.concatenate([sf.push(c) for c in _chunked(audio, 333)]), out, rtol=STREAM_RTOL, atol=STREAM_ATOL
    )


# --- import hygiene ------------------------------------------------------------------------------


_IMPORT_ALL = """
import importlib, pkgutil, sys
before = set(sys.modules)
import voicegender
names = sorted(m.name for m in pkgutil.walk_packages(voicegender.__path__, "voicegender."))
assert "voicegender.frontend" in names, names
for name in names:
    importlib.import_module(name)
new = {m.split(".")[0] for m in set(sys.modules) - before}
print(" ".join(names))
print(" ".join(sorted(new - set(sys.stdlib_module_names) - {"numpy", "voicegender"})))
"""


def test_device_package_imports_numpy_and_stdlib_only() -> None:
    # Every module under device/, found at run time so modules added later are covered too.
    result = subprocess.run([sys.executable, "-c", _IMPORT_ALL], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names, extra = ([*result.stdout.splitlines(), "", ""])[:2]
    assert len(names.split()) >= 3
    assert "tensorflow" not in extra.split() and "scipy" not in extra.split(), extra
    assert extra == "", (
        f"device modules import {extra} at import time (only numpy and the stdlib are allowed)"
    )

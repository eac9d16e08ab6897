"""Log-mel and MFCC features from 16 kHz float32 audio, in numpy alone.

The same code runs in training and on the device; its settings are stored in every model's metadata
so the two can never disagree. Frames are not centred (no padding): frame ``i`` covers samples
``[i * hop, i * hop + win)``, which is what lets the streaming extractor reproduce the batch result
exactly for any chunking of the input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .errors import VoicegenderError


@dataclass(frozen=True)
class FrontendSettings:
    """Feature extraction parameters (stored with every model)."""

    sample_rate: int = 16000
    """Input sample rate in Hz; other rates are resampled before the front end."""
    win_length: int = 400
    """Analysis window in samples (25 ms at 16 kHz), periodic Hann."""
    hop_length: int = 160
    """Hop between frames in samples (10 ms at 16 kHz)."""
    n_fft: int = 512
    """FFT size; the window is zero-padded to this length."""
    n_mels: int = 40
    """Number of mel bands (Slaney mel scale, Slaney area normalisation, as librosa's default)."""
    fmin: float = 60.0
    """Lowest mel edge in Hz: low enough to keep the first harmonics of male voices (F0 85-155 Hz)."""
    fmax: float = 8000.0
    """Highest mel edge in Hz."""
    n_mfcc: int = 30
    """Number of cepstral coefficients kept (DCT-II, orthonormal, of the dB log-mel)."""
    log_floor: float = 1e-10
    """Power floor before the log, so silence gives a finite -100 dB instead of -inf."""

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0:
            problems.append("sample_rate must be > 0")
        if not 0 < self.hop_length <= self.win_length <= self.n_fft:
            problems.append("need 0 < hop_length <= win_length <= n_fft")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append("need 0 <= fmin < fmax <= sample_rate / 2")
        if not 0 < self.n_mfcc <= self.n_mels:
            problems.append("need 0 < n_mfcc <= n_mels")
        if self.log_floor <= 0:
            problems.append("log_floor must be > 0")
        if problems:
            raise VoicegenderError(f"front-end settings: {'; '.join(problems)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrontendSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise VoicegenderError(f"front-end settings: unknown key(s) {', '.join(unknown)}")
        return cls(**data)

    def n_frames(self, n_samples: int) -> int:
        """Number of whole frames in ``n_samples`` samples (0 when shorter than one window)."""
        if n_samples < self.win_length:
            return 0
        return 1 + (n_samples - self.win_length) // self.hop_length


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa's ``htk=False``)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    mel = hz / f_sp
    high = hz >= min_log_hz
    return np.where(high, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep, mel)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(s: FrontendSettings) -> np.ndarray:
    """Triangular mel filters, shape (n_fft // 2 + 1, n_mels), area-normalised (Slaney)."""
    fft_freqs = np.linspace(0, s.sample_rate / 2, s.n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(s.fmin), hz_to_mel(s.fmax), s.n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.T.astype(np.float32)


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II as a (n_in, n_out) matrix, so ``mfcc = log_mel @ dct``."""
    n = np.arange(n_in)
    k = np.arange(n_out)
    basis = np.cos(np.pi / n_in * (n[:, None] + 0.5) * k[None, :]) * np.sqrt(2.0 / n_in)
    basis[:, 0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


_BLOCK_FRAMES = 256


class Frontend:
    """Batch feature extraction with precomputed window, filterbank and DCT."""

    def __init__(self, settings: FrontendSettings | None = None) -> None:
        self.settings = settings or FrontendSettings()

    @cached_property
    def _window(self) -> np.ndarray:
        s = self.settings
        # Periodic Hann, as librosa/scipy "hann" with fftbins=True.
        win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(s.win_length) / s.win_length)
        return win.astype(np.float32)

    @cached_property
    def _mel(self) -> np.ndarray:
        return mel_filterbank(self.settings)

    @cached_property
    def _dct(self) -> np.ndarray:
        return dct_matrix(self.settings.n_mels, self.settings.n_mfcc)

    def frames(self, audio: np.ndarray) -> np.ndarray:
        """Unwindowed frames, shape (n_frames, win_length): a read-only strided view of ``audio``."""
        s = self.settings
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise VoicegenderError(f"front end: expected mono audio (1-D), got shape {audio.shape}")
        n = s.n_frames(audio.size)
        if n == 0:
            return np.zeros((0, s.win_length), dtype=np.float32)
        return np.lib.stride_tricks.as_strided(
            audio,
            shape=(n, s.win_length),
            strides=(audio.strides[0] * s.hop_length, audio.strides[0]),
            writeable=False,
        )

    def power_spectrum(self, frames: np.ndarray) -> np.ndarray:
        """|rfft|^2 of windowed frames, shape (n_frames, n_fft // 2 + 1)."""
        # Padding the window at the end rather than centring it in n_fft (as librosa does) only
        # changes the phase, so the power spectrum is the same.
        spec = np.fft.rfft(frames * self._window, n=self.settings.n_fft, axis=1)
        return spec.real**2 + spec.imag**2

    def log_mel(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel energies in dB, shape (n_frames, n_mels), floored at ``10*log10(log_floor)``."""
        frames = self.frames(audio)
        out = np.empty((frames.shape[0], self.settings.n_mels), dtype=np.float32)
        # Blocks of frames keep the FFT's working set in cache: about 2x faster on long inputs.
        for i in range(0, frames.shape[0], _BLOCK_FRAMES):
            np.matmul(self.power_spectrum(frames[i : i + _BLOCK_FRAMES]), self._mel, out=out[i : i + _BLOCK_FRAMES])
        np.maximum(out, self.settings.log_floor, out=out)
        np.log10(out, out=out)
        out *= 10.0
        return out

    def mfcc(self, audio: np.ndarray) -> np.ndarray:
        """MFCCs, shape (n_frames, n_mfcc): orthonormal DCT-II of the dB log-mel."""
        return self.log_mel(audio) @ self._dct


class StreamingFrontend:
    """Feeds audio in chunks of any size; yields exactly the frames ``Frontend.mfcc`` gives.

    Keeps at most ``win_length - hop_length`` samples (plus the unconsumed part of the last hop)
    between calls, so its memory is bounded whatever the stream length.
    """

    def __init__(self, settings: FrontendSettings | None = None, kind: str = "mfcc") -> None:
        if kind not in ("mfcc", "log_mel"):
            raise VoicegenderError(f"streaming front end: kind must be 'mfcc' or 'log_mel', not {kind!r}")
        self.frontend = Frontend(settings)
        self.settings = self.frontend.settings
        self._compute = self.frontend.mfcc if kind == "mfcc" else self.frontend.log_mel
        self._pending = np.zeros(0, dtype=np.float32)
        self.frames_emitted = 0
        """Frames produced so far; frame ``i`` starts at sample ``i * hop_length`` of the stream."""

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)
        self.frames_emitted = 0

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Add samples; return the new feature frames (possibly none), shape (k, n_features)."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        buf = np.concatenate((self._pending, chunk)) if self._pending.size else chunk
        s = self.settings
        n = s.n_frames(buf.size)
        out = self._compute(buf[: (n - 1) * s.hop_length + s.win_length] if n else buf[:0])
        self._pending = buf[n * s.hop_length :].copy()
        self.frames_emitted += n
        return out

"""Log-mel and MFCC features from 16 kHz float32 audio, in numpy alone.

The same code runs in training and on the device; its settings are stored in every model's metadata
so the two can never disagree. Frames are not centred (no padding): frame ``i`` covers samples
``[i * hop, i * hop + win)``, which is what lets the streaming extractor reproduce the batch result
exactly for any chunking of the input.

Input rules (batch and streaming alike):

- Samples are floats in [-1, 1] (any float dtype; converted to float32 first, so float64 input gives
  the same features as its float32 rounding). Integer PCM is refused: scale it by its full scale
  first (``voicegender.wavio`` does), otherwise the features would be ~90 dB too loud.
- Batch input is 1-D; a streaming chunk may also be ``(n, 1)`` (a mono block from sounddevice).
- Features are always finite. A frame containing a NaN or infinite sample gives ``log_floor`` in
  every mel band, exactly like digital silence, so one corrupt block cannot poison the stream or
  stop the daemon (infinities may also raise numpy's RuntimeWarning). The WAV reader refuses such
  files, so training data never depends on this.

Precision: every stage runs in float64 and the result is rounded to float32 once, at the end. Work
is split into blocks of frames whose size depends on how the audio arrives (one frame per push when
streaming, 100 in batch), and BLAS kernels sum a product's terms in an order that depends on the
block's shape and on the CPU (AVX2, AVX-512, NEON), so a frame's exact value may differ between
streaming and batch. The float64 difference is bounded by the sums' rounding: the mel product has at
most ``n_fft // 2 + 1`` non-negative terms (relative difference <= 2 * 257 * 2**-53 ~ 6e-14, so
< 3e-13 dB after the log), and the DCT has ``n_mels`` terms of |log10 energy * 10 * DCT| <= 224
(absolute difference <= 2 * 40 * 2**-53 * 40 * 224 < 1e-10). Rounding to float32 then leaves two
paths at most one float32 spacing apart plus that 1e-10: ``STREAM_TOLERANCE`` states the bound the
tests hold every path to, on any CPU. (Before, the DCT ran in float32 and paths differed by up to
1.8e-4 on AVX-512.)

Speed: the FFT and mel stages run in float64 on blocks of frames held in a reused per-thread
workspace: no large temporaries (whose page faults cost more than the arithmetic), and every
matrix product is small enough that OpenBLAS runs it on the calling thread. OpenBLAS's worker
threads gain nothing on products this small and are many times slower when another process is
using the other cores.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import VoicegenderError

FRONTEND_VERSION = 1
"""Bumped whenever the numbers the front end produces change; models record the version they need."""


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
    n_mfcc: int = 40
    """Cepstral coefficients kept (orthonormal DCT-II of the dB log-mel); all of them by default, since
    truncating smooths away the harmonic detail that carries pitch (worse held-out accuracy in training)."""
    log_floor: float = 1e-10
    """Power floor before the log, so silence gives a finite -100 dB instead of -inf."""

    def __post_init__(self) -> None:
        # Settings also come from model metadata (JSON): check types before comparing values.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            integer = f.type in ("int", int)
            ok = isinstance(value, int) if integer else isinstance(value, (int, float))
            if not ok or isinstance(value, bool) or not -(2**31) < value < 2**31 or value != value:
                kind = "an integer" if integer else "a number"
                raise VoicegenderError(
                    f"front-end settings: {f.name} must be {kind} between -2**31 and 2**31, got {value!r:.40}"
                )
        problems = []
        if self.sample_rate <= 0:
            problems.append("sample_rate must be > 0")
        if not 0 < self.hop_length <= self.win_length <= self.n_fft:
            problems.append("need 0 < hop_length <= win_length <= n_fft")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append("need 0 <= fmin < fmax <= sample_rate / 2")
        if not 0 < self.n_mfcc <= self.n_mels:
            problems.append("need 0 < n_mfcc <= n_mels")
        if not self.log_floor > 0:
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


def _mel_weights(s: FrontendSettings) -> np.ndarray:
    """Float64 triangular mel filters, shape (n_fft // 2 + 1, n_mels)."""
    fft_freqs = np.linspace(0, s.sample_rate / 2, s.n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(s.fmin), hz_to_mel(s.fmax), s.n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return np.ascontiguousarray(weights.T)


def mel_filterbank(s: FrontendSettings) -> np.ndarray:
    """Triangular mel filters, shape (n_fft // 2 + 1, n_mels), area-normalised (Slaney)."""
    return _mel_weights(s).astype(np.float32)


def _dct_basis(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II as a float64 (n_in, n_out) matrix."""
    n = np.arange(n_in)
    k = np.arange(n_out)
    basis = np.cos(np.pi / n_in * (n[:, None] + 0.5) * k[None, :]) * np.sqrt(2.0 / n_in)
    basis[:, 0] /= np.sqrt(2.0)
    return basis


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II as a float32 (n_in, n_out) matrix, so ``mfcc = log_mel @ dct``."""
    return _dct_basis(n_in, n_out).astype(np.float32)


STREAM_TOLERANCE = (2.0**-23, 1e-9)
"""(rtol, atol) within which any two ways of computing the same frame agree (streaming or batch, any
chunking, any CPU): one float32 spacing (at most ``2**-23`` of the value) plus the float64 difference
bound derived in the module docstring (< 1e-10), with a tenfold margin."""


_BLOCK_FRAMES = 100
"""Frames per block: the model's 1 s window (98 frames) is one block; the block's float64 buffers
(~1 MB) stay in cache."""
_GEMM_SINGLE_THREAD = 4 * 65536
"""OpenBLAS runs a matrix product of m*k*n multiply-adds up to this on the calling thread (its
default GEMM_MULTITHREAD_THRESHOLD, 4, times SMP_THRESHOLD_MIN); bigger ones wake worker threads."""
_BANDED_MIN_FRAMES = 16
"""From this many frames in a block on, the mel product skips the filterbank's zeros (see _MelPlan)."""


class _MelPlan:
    """How to multiply power spectra by the mel filterbank with OpenBLAS on the calling thread.

    Few frames (streaming): one dense product, split into row slices if needed. Many frames: per
    group of adjacent filters, only the FFT bins those filters cover (~95% of the dense matrix is
    zeros): ~40% faster on a block of 100 frames, slower on a handful because of the extra calls.
    """

    def __init__(self, weights: np.ndarray) -> None:
        n_bins, n_mels = weights.shape
        self.weights = weights
        self.dense_rows = max(1, _GEMM_SINGLE_THREAD // (n_bins * n_mels))
        per_group = max(1, min(10, _GEMM_SINGLE_THREAD // (_BLOCK_FRAMES * n_bins)))
        self.bands: list[tuple[int, int, int, int, np.ndarray]] = []
        """(first filter, end filter, first bin, end bin, weights as (filters, bins))."""
        for f0 in range(0, n_mels, per_group):
            f1 = min(f0 + per_group, n_mels)
            bins = np.flatnonzero(weights[:, f0:f1].any(axis=1))
            b0, b1 = int(bins[0]), int(bins[-1]) + 1
            self.bands.append((f0, f1, b0, b1, np.ascontiguousarray(weights[b0:b1, f0:f1].T)))


RfftInto = Callable[[np.ndarray, np.ndarray], object]


def _rfft_into(n_fft: int) -> RfftInto | None:
    """A function writing the rfft of each row of a (m, n_fft) float64 array into a (m, n_fft // 2 + 1)
    complex128 array, or None on numpy 1.x, whose rfft cannot write into a given array.

    On numpy >= 2 it calls the rfft kernel directly: np.fft.rfft's Python wrapper costs ~2 us a
    call, a sixth of the streaming extractor's cost per hop. The kernel is private, so it is used
    only if it exists and gives np.fft.rfft's exact result on a probe.
    """
    probe = np.linspace(-1.0, 1.0, 2 * n_fft).reshape(2, n_fft) ** 3
    try:
        from numpy.fft import _pocketfft_umath as kernels  # private: may be absent or differ

        kernel = kernels.rfft_n_even if n_fft % 2 == 0 else kernels.rfft_n_odd
        got = np.empty((2, n_fft // 2 + 1), dtype=np.complex128)
        kernel(probe, 1.0, out=got)
        if np.array_equal(got, np.fft.rfft(probe)):
            return lambda x, out: kernel(x, 1.0, out=out)
    except Exception:  # any difference in the private API means "don't use it"
        pass
    try:
        np.fft.rfft(probe, out=np.empty((2, n_fft // 2 + 1), dtype=np.complex128))
    except TypeError:
        return None
    return lambda x, out: np.fft.rfft(x, out=out)


def _float_samples(audio: Any, what: str) -> np.ndarray:
    """``audio`` as a float32 array (any shape), refusing integer, complex and other dtypes."""
    a = np.asarray(audio)
    if a.dtype.kind != "f":
        hint = " (scale integer PCM to [-1, 1] first, e.g. int16 / 32768)" if a.dtype.kind in "iu" else ""
        raise VoicegenderError(f"{what}: expected float samples in [-1, 1], got dtype {a.dtype}{hint}")
    return a.astype(np.float32, copy=False)


class _Block:
    """Views of a workspace for a block of ``m`` frames, made once per ``m``: each slice costs
    ~0.2 us, which adds up when the streaming extractor handles one frame per push."""

    __slots__ = ("cep", "db", "im", "logmel", "mel_parts", "parts", "power", "re", "spec", "x", "x_win")

    def __init__(self, ws: _Workspace, m: int) -> None:
        self.x = ws.x[:m]
        self.x_win = self.x[:, : ws.win_length]
        self.spec = ws.spec[:m]
        self.parts = self.spec.view(np.float64)  # re, im interleaved
        self.re, self.im = self.parts[:, 0::2], self.parts[:, 1::2]
        self.power = ws.power[:m]
        self.cep = ws.cep[:m]
        plan = ws.mel_plan
        self.mel_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
        """Products ``np.dot(left, right, out=dest)`` that together fill ``logmel``."""
        if m < _BANDED_MIN_FRAMES:
            self.logmel, self.db = ws.logmel[:m], ws.db[:m]
            rows = plan.dense_rows
            self.mel_parts = [
                (self.power[j : j + rows], plan.weights, self.logmel[j : j + rows]) for j in range(0, m, rows)
            ]
        else:
            # Banded: (filters, m) results, so that each band's rows are a contiguous output.
            n_mels = plan.weights.shape[1]
            logmel_t = ws.logmel.reshape(-1)[: n_mels * m].reshape(n_mels, m)
            self.logmel, self.db = logmel_t.T, ws.db.reshape(-1)[: n_mels * m].reshape(n_mels, m).T
            self.mel_parts = [
                (w, self.power[:, b0:b1].T, logmel_t[f0:f1]) for f0, f1, b0, b1, w in plan.bands
            ]


class _Workspace:
    """Buffers for one block of frames, reused across calls (one per thread)."""

    __slots__ = ("blocks", "cep", "db", "logmel", "mel_plan", "power", "spec", "win_length", "x")

    def __init__(self, s: FrontendSettings, mel_plan: _MelPlan) -> None:
        n_bins = s.n_fft // 2 + 1
        self.x = np.zeros((_BLOCK_FRAMES, s.n_fft))
        """Windowed frames; columns from win_length on are the FFT's zero padding and stay zero."""
        self.spec = np.empty((_BLOCK_FRAMES, n_bins), dtype=np.complex128)
        self.power = np.empty((_BLOCK_FRAMES, n_bins))
        self.logmel = np.empty((_BLOCK_FRAMES, s.n_mels))
        self.db = np.empty((_BLOCK_FRAMES, s.n_mels))
        self.cep = np.empty((_BLOCK_FRAMES, s.n_mfcc))
        self.win_length, self.mel_plan = s.win_length, mel_plan
        self.blocks: dict[int, _Block] = {}

    def block(self, m: int) -> _Block:
        b = self.blocks.get(m)
        if b is None:
            b = self.blocks[m] = _Block(self, m)
        return b


class Frontend:
    """Batch feature extraction with precomputed window, filterbank and DCT.

    Thread-safe: each thread gets its own workspace.
    """

    def __init__(self, settings: FrontendSettings | None = None) -> None:
        self.settings = s = settings or FrontendSettings()
        # Periodic Hann, as librosa/scipy "hann" with fftbins=True.
        self._window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(s.win_length) / s.win_length)
        self._mel = _mel_weights(s)
        empty = np.flatnonzero(~self._mel.any(axis=0))
        if empty.size:
            raise VoicegenderError(
                f"front-end settings: mel band {empty[0]} of {s.n_mels} falls between two FFT bins "
                f"(n_fft={s.n_fft} is too small for n_mels={s.n_mels} from fmin={s.fmin:g} Hz)"
            )
        # MFCCs are taken of log10 (not dB) energies, so the DCT carries the factor 10.
        self._dct10 = _dct_basis(s.n_mels, s.n_mfcc) * 10.0
        self._floor = s.log_floor
        self._rfft_into = _rfft_into(s.n_fft)
        self._mel_plan = _MelPlan(self._mel)
        self._local = threading.local()

    def _workspace(self) -> _Workspace:
        ws = getattr(self._local, "ws", None)
        if ws is None:
            ws = self._local.ws = _Workspace(self.settings, self._mel_plan)
        return ws

    def frames(self, audio: np.ndarray) -> np.ndarray:
        """Unwindowed frames, shape (n_frames, win_length): a read-only strided view of ``audio``."""
        s = self.settings
        audio = _float_samples(audio, "front end")
        if audio.ndim != 1:
            raise VoicegenderError(f"front end: expected mono audio (1-D), got shape {audio.shape}")
        audio = np.ascontiguousarray(audio)
        n = s.n_frames(audio.size)
        if n == 0:
            return np.zeros((0, s.win_length), dtype=np.float32)
        return np.lib.stride_tricks.as_strided(
            audio,
            shape=(n, s.win_length),
            strides=(audio.strides[0] * s.hop_length, audio.strides[0]),
            writeable=False,
        )

    def _power_block(self, frames: np.ndarray, b: _Block) -> np.ndarray:
        """|rfft|^2 of a block of frames (windowed here), into ``b.power`` (float64)."""
        np.multiply(frames, self._window, out=b.x_win)
        # Padding the window at the end rather than centring it in n_fft (as librosa does) only
        # changes the phase, so the power spectrum is the same.
        if self._rfft_into is not None:
            self._rfft_into(b.x, b.spec)
            parts, re, im = b.parts, b.re, b.im
        else:
            parts = np.fft.rfft(b.x).view(np.float64)
            re, im = parts[:, 0::2], parts[:, 1::2]
        np.square(parts, out=parts)
        return np.add(re, im, out=b.power)

    def _block_features(self, frames: np.ndarray, b: _Block, out: np.ndarray, mfcc: bool) -> None:
        """Log-mel dB (or MFCCs) of a block of at most _BLOCK_FRAMES frames into float32 ``out``:
        float64 throughout, one rounding to float32 at the end (see the module docstring)."""
        self._power_block(frames, b)
        for left, right, dest in b.mel_parts:
            np.dot(left, right, out=dest)
        logmel = b.logmel
        # fmax, unlike maximum, turns the NaN of a frame with non-finite samples into the floor.
        np.fmax(logmel, self._floor, out=logmel)
        if mfcc:
            np.copyto(out, np.dot(np.log10(logmel, out=b.db), self._dct10, out=b.cep), casting="same_kind")
        else:
            np.multiply(np.log10(logmel, out=logmel), 10.0, out=out)

    def _features_into(self, frames: np.ndarray, out: np.ndarray, mfcc: bool, ws: _Workspace) -> None:
        """Log-mel dB (or MFCCs) of any number of frames into float32 ``out``, block by block."""
        n = frames.shape[0]
        if n <= _BLOCK_FRAMES:
            self._block_features(frames, ws.block(n), out, mfcc)
            return
        for i in range(0, n, _BLOCK_FRAMES):
            m = min(_BLOCK_FRAMES, n - i)
            self._block_features(frames[i : i + m], ws.block(m), out[i : i + m], mfcc)

    def _features(self, audio: np.ndarray, mfcc: bool) -> np.ndarray:
        frames = self.frames(audio)
        s = self.settings
        out = np.empty((frames.shape[0], s.n_mfcc if mfcc else s.n_mels), dtype=np.float32)
        if frames.shape[0]:
            self._features_into(frames, out, mfcc, self._workspace())
        return out

    def power_spectrum(self, frames: np.ndarray) -> np.ndarray:
        """|rfft|^2 of windowed frames, shape (n_frames, n_fft // 2 + 1)."""
        frames = _float_samples(frames, "front end")
        s = self.settings
        if frames.ndim != 2 or frames.shape[1] != s.win_length:
            raise VoicegenderError(
                f"front end: expected frames of shape (n, {s.win_length}), got {frames.shape}"
            )
        out = np.empty((frames.shape[0], s.n_fft // 2 + 1), dtype=np.float32)
        ws = self._workspace()
        for i in range(0, frames.shape[0], _BLOCK_FRAMES):
            block = frames[i : i + _BLOCK_FRAMES]
            out[i : i + block.shape[0]] = self._power_block(block, ws.block(block.shape[0]))
        return out

    def log_mel(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel energies in dB, shape (n_frames, n_mels), floored at ``10*log10(log_floor)``."""
        return self._features(audio, mfcc=False)

    def mfcc(self, audio: np.ndarray) -> np.ndarray:
        """MFCCs, shape (n_frames, n_mfcc): orthonormal DCT-II of the dB log-mel."""
        return self._features(audio, mfcc=True)


_BUFFER_HOPS = 32
"""Streaming buffer beyond one window, in hops: chunks up to ~0.3 s are copied, not concatenated."""


class StreamingFrontend:
    """Feeds audio in chunks of any size; yields exactly the frames ``Frontend.mfcc`` gives.

    Keeps fewer than ``win_length`` unconsumed samples between calls, in a preallocated buffer, so
    its memory is bounded whatever the stream length. Not for concurrent use from several threads.
    """

    def __init__(self, settings: FrontendSettings | None = None, kind: str = "mfcc") -> None:
        if kind not in ("mfcc", "log_mel"):
            raise VoicegenderError(f"streaming front end: kind must be 'mfcc' or 'log_mel', not {kind!r}")
        self.frontend = fe = Frontend(settings)
        self.settings = s = fe.settings
        self._mfcc = kind == "mfcc"
        self._n_out = s.n_mfcc if self._mfcc else s.n_mels
        self._win, self._hop = s.win_length, s.hop_length
        self._ws = _Workspace(s, fe._mel_plan)
        # float64 holds the float32 samples exactly and saves a conversion when windowing.
        self._buf = np.zeros(s.win_length + _BUFFER_HOPS * s.hop_length)
        # Unconsumed samples are _buf[_start:_end]; the next frame starts at _start.
        self._start = self._end = 0
        self.frames_emitted = 0
        """Frames produced so far; frame ``i`` starts at sample ``i * hop_length`` of the stream."""

    def reset(self) -> None:
        self._start = self._end = 0
        self.frames_emitted = 0

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Add samples; return the new feature frames (possibly none), shape (k, n_features).

        ``chunk`` is float samples of shape (n,) or (n, 1); float64 is rounded to float32 first,
        as the batch front end does.
        """
        a = chunk
        if type(a) is not np.ndarray or a.dtype != np.float32 or a.ndim != 1:
            a = _float_samples(chunk, "streaming front end")
            if a.ndim == 2 and a.shape[1] == 1:
                a = a[:, 0]
            elif a.ndim != 1:
                raise VoicegenderError(
                    f"streaming front end: expected mono samples, shape (n,) or (n, 1), got {a.shape}"
                )
        buf, start, end, n = self._buf, self._start, self._end, a.shape[0]
        if end + n > buf.shape[0]:
            keep = end - start
            if keep + n > buf.shape[0]:
                return self._push_large(a)
            buf[:keep] = buf[start:end]  # numpy copies overlapping ranges correctly
            start, end = 0, keep
        buf[end : end + n] = a
        end += n
        self._end = end
        if end - start < self._win:
            self._start = start
            return np.empty((0, self._n_out), dtype=np.float32)
        hop = self._hop
        k = (end - start - self._win) // hop + 1
        self._start = start + k * hop
        self.frames_emitted += k
        frames = np.ndarray((k, self._win), np.float64, buf, start * 8, (hop * 8, 8))
        out = np.empty((k, self._n_out), dtype=np.float32)
        self.frontend._features_into(frames, out, self._mfcc, self._ws)
        return out

    def _push_large(self, a: np.ndarray) -> np.ndarray:
        """A chunk bigger than the buffer: concatenated to the unconsumed samples, framed in batch."""
        data = np.concatenate((self._buf[self._start : self._end].astype(np.float32), a))
        s = self.settings
        k = s.n_frames(data.shape[0])
        out = np.empty((k, self._n_out), dtype=np.float32)
        if k:
            frames = np.lib.stride_tricks.as_strided(data, (k, s.win_length), (s.hop_length * 4, 4))
            self.frontend._features_into(frames, out, self._mfcc, self._ws)
        rest = data[k * s.hop_length :]
        self._buf[: rest.shape[0]] = rest
        self._start, self._end = 0, rest.shape[0]
        self.frames_emitted += k
        return out

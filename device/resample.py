"""Polyphase FIR resampling (any integer rate to 16 kHz by default), batch and streaming, in numpy.

The filter and the output alignment are those of ``scipy.signal.resample_poly`` with its defaults
(Kaiser window, beta 5, cutoff at the lower Nyquist, ``half_len = 10 * max(up, down)``, zero padding
at both ends), so the device and any scipy-based training code see the same samples. For a ratio
``up / down`` (reduced by their gcd), output ``m`` is::

    y[m] = sum_n x[n] * h[half_len + m * down - n * up]

Only the taps that meet a real input sample are evaluated (no zero-stuffing): each output needs
``ceil(len(h) / up)`` multiply-adds, e.g. 56 for 44.1 kHz -> 16 kHz and 61 for 48 kHz -> 16 kHz.
Outputs ``m`` and ``m + up`` use the same taps, and the input window moves by ``down`` samples, so
for long inputs the outputs sharing a phase are computed together as one dot product over a strided
(copy-free) view of the input.

Parity with ``scipy.signal.resample_poly`` on float32 input (same filter, same length
``ceil(n * up / down)``): max abs difference about 1e-6, see tests/test_resample.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import VoicegenderError

MIN_RATE = 4000
"""Lowest sample rate accepted, in Hz (input or output)."""
MAX_RATE = 384000
"""Highest sample rate accepted, in Hz (input or output)."""
MAX_FACTOR = 100_000
"""Largest reduced up or down factor: the filter has ``20 * max(up, down) + 1`` taps."""
KAISER_BETA = 5.0
"""Kaiser window shape, scipy.signal.resample_poly's default."""

# Use one strided dot product per phase when each phase has at least this many outputs; below it,
# a gather over all outputs costs fewer Python-level calls (short streaming chunks).
_ROWS_PER_PHASE = 16
# Elements gathered per block on the gather path: keeps the temporary around 256 kB.
_GATHER_BLOCK = 1 << 16


def check_rate(rate: object, what: str = "sample rate") -> int:
    """Return ``rate`` as an int Hz, or raise a VoicegenderError naming it."""
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.integer | np.floating):
        raise VoicegenderError(f"{what} {rate!r} is not a number")
    if not math.isfinite(rate) or rate != int(rate):
        raise VoicegenderError(f"{what} {rate!r} Hz is not a whole number of Hz")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise VoicegenderError(f"{what} {int(rate)} Hz is outside the supported {MIN_RATE}..{MAX_RATE} Hz")
    return int(rate)


def ratio(sr_in: int, sr_out: int) -> tuple[int, int]:
    """The reduced ``(up, down)`` pair with ``sr_out / sr_in == up / down``."""
    g = math.gcd(sr_in, sr_out)
    return sr_out // g, sr_in // g


def lowpass(up: int, down: int) -> tuple[np.ndarray, int]:
    """The anti-aliasing filter (float64, gain ``up``) and its half length, as resample_poly designs it.

    Same as ``scipy.signal.firwin(2 * half_len + 1, 1 / max(up, down), window=('kaiser', 5.0)) * up``.
    """
    max_rate = max(up, down)
    half_len = 10 * max_rate
    n = np.arange(2 * half_len + 1) - half_len
    cutoff = 1.0 / max_rate  # relative to the Nyquist frequency of the upsampled signal
    h = cutoff * np.sinc(cutoff * n) * np.kaiser(2 * half_len + 1, KAISER_BETA)
    h /= h.sum()  # unit DC gain, as firwin(scale=True)
    return h * up, half_len


@dataclass(frozen=True)
class _Polyphase:
    """Filter taps rearranged so that output ``m`` is ``dot(x[s_m : s_m + taps_per_phase], taps[m % up])``."""

    up: int
    down: int
    half_len: int
    taps_per_phase: int
    taps: np.ndarray
    """(up, taps_per_phase) float32; row r holds the taps for outputs m with m % up == r, oldest first."""
    starts: np.ndarray
    """(up,) int64: s_r, the first input index of output r's window (may be negative: zero padding)."""

    def window_start(self, m: np.ndarray | int) -> np.ndarray | int:
        """First input index of output ``m``'s window; ``s_{m + up} = s_m + down``."""
        return self.starts[m % self.up] + (m // self.up) * self.down

    def ready(self, n_in: int) -> int:
        """Number of outputs computable from the first ``n_in`` inputs without knowing what follows."""
        # Output m's newest input is (m * down + half_len) // up; it must be < n_in.
        return max(0, (self.up * n_in - 1 - self.half_len) // self.down + 1)

    def total(self, n_in: int) -> int:
        """Number of outputs for a complete input of ``n_in`` samples: ceil(n_in * up / down)."""
        return -(-n_in * self.up // self.down)

    def compute(self, buf: np.ndarray, base: int, m0: int, count: int) -> np.ndarray:
        """Outputs ``m0 .. m0 + count - 1`` from ``buf``, whose element 0 is input index ``base``.

        ``buf`` must cover every window: from ``window_start(m0)`` to ``window_start(m0 + count - 1)
        + taps_per_phase``, with explicit zeros where the signal is padded.
        """
        out = np.empty(count, dtype=np.float32)
        k = self.taps_per_phase
        if count >= _ROWS_PER_PHASE * self.up:
            for i in range(min(self.up, count)):
                m = m0 + i
                rows = -(-(count - i) // self.up)
                s = int(self.window_start(m)) - base
                view = sliding_window_view(buf[s : s + (rows - 1) * self.down + k], k)[:: self.down]
                out[i :: self.up] = np.einsum("qj,j->q", view, self.taps[m % self.up])
            return out
        step = max(1, _GATHER_BLOCK // k)
        offsets = np.arange(k)
        for i in range(0, count, step):
            m = np.arange(m0 + i, m0 + min(count, i + step), dtype=np.int64)
            windows = buf[(self.window_start(m) - base)[:, None] + offsets]
            out[i : i + m.size] = np.einsum("ij,ij->i", windows, self.taps[m % self.up])
        return out


def _polyphase_for(sr_in: int, sr_out: int) -> _Polyphase:
    up, down = ratio(sr_in, sr_out)
    if max(up, down) > MAX_FACTOR:
        raise VoicegenderError(
            f"resampling {sr_in} Hz to {sr_out} Hz (ratio {up}/{down}) needs a filter with "
            f"{20 * max(up, down) + 1} taps (limit: factors up to {MAX_FACTOR}); use a standard sample rate"
        )
    return _polyphase(up, down)


@lru_cache(maxsize=16)
def _polyphase(up: int, down: int) -> _Polyphase:
    h, half_len = lowpass(up, down)
    k = -(-h.size // up)
    padded = np.zeros(k * up)
    padded[: h.size] = h
    # bank[p, j] = h[p + j * up]; output m has phase p = (m * down + half_len) % up and its newest
    # input n = (m * down + half_len) // up meets tap bank[p, 0]; reverse so taps run oldest first.
    bank = padded.reshape(k, up).T
    t = np.arange(up, dtype=np.int64) * down + half_len
    taps = np.ascontiguousarray(bank[t % up, ::-1], dtype=np.float32)
    taps.flags.writeable = False
    starts = t // up - (k - 1)
    starts.flags.writeable = False
    return _Polyphase(up, down, half_len, k, taps, starts)


def _as_mono(audio: np.ndarray, what: str) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and audio.shape[1] == 1:  # (frames, 1), as sounddevice delivers mono
        audio = audio[:, 0]
    if audio.ndim != 1:
        raise VoicegenderError(f"{what}: expected mono audio (1-D), got shape {audio.shape}")
    return audio


def resample(audio: np.ndarray, sr_in: int, sr_out: int = 16000) -> np.ndarray:
    """Resample mono ``audio`` from ``sr_in`` to ``sr_out`` Hz; float32, ``ceil(n * sr_out / sr_in)`` samples.

    Equal rates return the input itself (as float32, no copy when it already is float32).
    """
    sr_in = check_rate(sr_in, "input sample rate")
    sr_out = check_rate(sr_out, "output sample rate")
    audio = _as_mono(audio, "resample")
    if sr_in == sr_out:
        return audio
    pp = _polyphase_for(sr_in, sr_out)
    n_out = pp.total(audio.size)
    if n_out == 0:
        return np.zeros(0, dtype=np.float32)
    lo = min(0, int(pp.window_start(0)))
    hi = max(audio.size, int(pp.window_start(n_out - 1)) + pp.taps_per_phase)
    buf = np.zeros(hi - lo, dtype=np.float32)
    buf[-lo : -lo + audio.size] = audio
    return pp.compute(buf, lo, 0, n_out)


class StreamingResampler:
    """Resamples a stream pushed in chunks of any size; ``push``es then ``flush`` equal ``resample``.

    ``push`` returns every output sample whose filter window lies within the input seen so far, so
    the output lags the input by about ``half_len / up`` input samples (0.6 ms from 44.1 or 48 kHz,
    1.25 ms from 8 kHz). ``flush`` ends the stream as the batch function does, padding with zeros, returns the
    remaining samples and resets the resampler for a new stream. Outputs equal the batch result up
    to float32 rounding (the sums may be grouped differently). Memory is bounded: only the current
    filter window of input is kept. Equal rates pass chunks through unchanged.
    """

    def __init__(self, sr_in: int, sr_out: int = 16000) -> None:
        self.sr_in = check_rate(sr_in, "input sample rate")
        self.sr_out = check_rate(sr_out, "output sample rate")
        self._pp = None if self.sr_in == self.sr_out else _polyphase_for(self.sr_in, self.sr_out)
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far."""
        self.samples_in = 0
        """Input samples pushed since the last reset."""
        self.samples_out = 0
        """Output samples returned since the last reset."""
        start = 0 if self._pp is None else min(0, int(self._pp.window_start(0)))
        self._base = start  # input index of self._buf[0]; negative indices are the leading zeros
        self._buf = np.zeros(-start, dtype=np.float32)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Add input samples; return the output samples now complete (possibly none)."""
        chunk = _as_mono(chunk, "streaming resampler")
        self.samples_in += chunk.size
        if self._pp is None:
            self.samples_out += chunk.size
            return chunk
        self._buf = np.concatenate((self._buf, chunk))
        return self._emit(self._pp.ready(self.samples_in))

    def flush(self) -> np.ndarray:
        """End the stream: return the remaining outputs (zero padding after the end) and reset."""
        if self._pp is None:
            self.reset()
            return np.zeros(0, dtype=np.float32)
        end = self._pp.total(self.samples_in)
        if end > self.samples_out:
            need = int(self._pp.window_start(end - 1)) + self._pp.taps_per_phase - self._base
            if need > self._buf.size:
                self._buf = np.concatenate((self._buf, np.zeros(need - self._buf.size, dtype=np.float32)))
        out = self._emit(end)
        self.reset()
        return out

    def _emit(self, end: int) -> np.ndarray:
        pp = self._pp
        assert pp is not None
        count = end - self.samples_out
        if count <= 0:
            return np.zeros(0, dtype=np.float32)
        out = pp.compute(self._buf, self._base, self.samples_out, count)
        self.samples_out = end
        # Keep input from the next output's window start on; copy so the old buffer can be freed.
        keep_from = int(pp.window_start(end)) - self._base
        self._buf = self._buf[keep_from:].copy()
        self._base += keep_from
        return out

"""Voice activity detection per front-end frame (10 ms hop), in numpy alone.

A frame is *voiced* when it is loud enough (an absolute level and a margin over an adaptive noise
floor), periodic with a pitch in the human range (YIN's cumulative mean normalised difference), and
not a single sinusoid (its strongest spectral peak does not hold nearly all the power). Periodicity
alone also matches tones and music, so a voiced frame only becomes a speech *candidate* when its
surroundings look like speech: the level of the active frames rises and falls with syllables
(stationary tones, chords and noise do not), and the pitch keeps moving between frames (notes of
instruments hold it). Candidates are then widened by a short pre-roll (unvoiced onsets such as "s")
and a hangover (unvoiced consonants and short gaps between syllables).

Labels come out with a fixed delay of ``lookahead + preroll`` seconds, so ``push`` in chunks of any
size followed by ``flush`` gives exactly the labels of one batch call (``detect_speech``). Frame ``i``
starts at sample ``i * hop_length``, like the front end's frames.

Speed: the pitch analysis runs on the low-passed signal decimated to 4 kHz (the 1 kHz low-pass is
over 60 dB down above 2 kHz, so nothing aliases), which makes its FFTs and lag ranges 4x shorter;
parabolic interpolation of the YIN dip keeps the pitch precise to well under the 0.2 % step. It is
skipped for frames too quiet to be voiced, and only the kept samples of the low-pass are computed. The
FFTs and running sums run in float64 on blocks of frames in reused buffers (as in ``frontend``), with
as few numpy calls as possible, since on a 100 ms chunk (10 frames) a call's overhead is as large as
its arithmetic.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import VoicegenderError
from .frontend import FrontendSettings, _rfft_into

PITCH_STEP = 0.002
"""Relative pitch change between consecutive frames (0.2 %) that counts as the pitch moving."""
_NFFT = 1024
_LOWPASS_HZ = 1000.0
_LOWPASS_TAPS = 63
_PITCH_RATE_HZ = 4000.0
"""Lowest rate the low-passed signal is decimated to for the pitch analysis (its Nyquist frequency,
2 kHz, is where the low-pass is over 60 dB down)."""
_POWER_EPS = 1e-12
# Rows of the detector's per-frame history.
_ACTIVE, _LEVEL, _LEVEL_SQ, _VOICED, _PAIR, _MOVED = range(6)
_N_ROWS = 6


@dataclass(frozen=True)
class VadSettings:
    """Voice activity detection ([vad] in the config)."""

    min_level_db: float = -55.0
    """Frames quieter than this (RMS of the 60-4000 Hz band, dB relative to full scale) are never speech."""
    snr_db: float = 6.0
    """How far above the adaptive noise floor (dB) a frame must be to count as active."""
    floor_rise_db_per_second: float = 3.0
    """How fast the noise floor creeps up during loud sound (it falls at once to quieter frames)."""
    f0_min_hz: float = 60.0
    """Lowest voice pitch (Hz) accepted as speech."""
    f0_max_hz: float = 600.0
    """Highest voice pitch (Hz) accepted as speech (sad or crying voices reach 500 Hz); above: a tone."""
    voicing_threshold: float = 0.25
    """YIN aperiodicity (0 = perfectly periodic, ~1 = noise) below which a frame counts as periodic."""
    tone_peak_fraction: float = 0.98
    """A frame whose strongest spectral peak holds more than this share of 60-4000 Hz power is a tone."""
    modulation_db: float = 2.0
    """Minimum spread (std, dB) of the active frames' level around a frame: syllables rise and fall."""
    pitch_moving_fraction: float = 0.4
    """Minimum share of consecutive voiced frames whose pitch moved by more than 0.2 % (not a held note)."""
    min_voiced_seconds: float = 0.1
    """Voiced audio needed within the context around a frame before it can be speech."""
    context_seconds: float = 0.5
    """History (before the frame) over which level modulation and pitch movement are measured."""
    lookahead_seconds: float = 0.05
    """Audio after the frame also used for those measures; part of the label delay."""
    preroll_seconds: float = 0.05
    """Speech labels start this long before the first candidate frame; part of the label delay."""
    hangover_seconds: float = 0.1
    """Speech labels continue this long after the last candidate frame, bridging short gaps."""

    def __post_init__(self) -> None:
        problems = []
        if not 40 <= self.f0_min_hz < self.f0_max_hz <= 1000:
            problems.append("need 40 <= f0_min_hz < f0_max_hz <= 1000")
        if not 0 < self.voicing_threshold < 1:
            problems.append("voicing_threshold must be in (0, 1)")
        if not 0 < self.tone_peak_fraction <= 1:
            problems.append("tone_peak_fraction must be in (0, 1]")
        if not 0 <= self.pitch_moving_fraction <= 1:
            problems.append("pitch_moving_fraction must be in [0, 1]")
        for name in ("snr_db", "floor_rise_db_per_second", "modulation_db", "min_voiced_seconds"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        for name in ("context_seconds", "lookahead_seconds", "preroll_seconds", "hangover_seconds"):
            if not 0 <= getattr(self, name) <= 5:
                problems.append(f"{name} must be in [0, 5]")
        if problems:
            raise VoicegenderError(f"[vad]: {'; '.join(problems)}")


@dataclass(frozen=True)
class FrameFeatures:
    """Per-frame measurements the VAD decides on (arrays of one value per frame)."""

    level_db: np.ndarray
    """RMS level in dBFS of the frame's 60-4000 Hz band (where voices have their energy)."""
    aperiodicity: np.ndarray
    """YIN cumulative mean normalised difference at the bottom of the chosen dip (0 = periodic)."""
    f0_hz: np.ndarray
    """Pitch of the first YIN dip (may lie outside the voice range: then the frame is a tone)."""
    peak_fraction: np.ndarray
    """Share of 60-4000 Hz power within +-3 bins of the strongest spectral bin."""


class FrameAnalyser:
    """Computes ``FrameFeatures`` for frames of ``frame_length`` samples (vectorised, no state between
    calls; not for concurrent use, since the buffers it works in are reused)."""

    def __init__(self, settings: VadSettings, sample_rate: int, hop_length: int = 160) -> None:
        self.sample_rate = sample_rate
        # Two periods of the lowest pitch: YIN needs max_lag samples beyond its integration window.
        self.analysis_length = n = 2 * math.ceil(sample_rate / settings.f0_min_hz) + 100
        self.frame_length = n + _LOWPASS_TAPS - 1
        """Input samples per frame: the analysis span plus the low-pass filter's support."""
        # The pitch analysis keeps every ``decimation``-th filtered sample; frames must start on one.
        self.decimation = q = max(
            d for d in range(1, max(1, int(sample_rate // _PITCH_RATE_HZ)) + 1) if hop_length % d == 0
        )
        self.pitch_rate = sample_rate / q
        self.max_lag = math.ceil(self.pitch_rate / settings.f0_min_hz)
        self.pitch_length = (n - 1) // q + 1
        """Decimated filtered samples per frame (those within the analysis span)."""
        self.integration = self.pitch_length - self.max_lag
        self._pitch_nfft = 1 << (self.pitch_length - 1).bit_length()
        self.threshold = settings.voicing_threshold
        if self.frame_length + _LOWPASS_TAPS > _NFFT:
            raise VoicegenderError(f"VAD: f0_min_hz is too low for {sample_rate} Hz audio")
        self._window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
        # Power of the windowed frame -> mean square of the signal (Parseval, one-sided spectrum).
        self._ms_scale = 2.0 / (_NFFT * np.sum(self._window**2))
        freqs = np.fft.rfftfreq(_NFFT, 1.0 / sample_rate)
        self._band = slice(int(np.searchsorted(freqs, 60.0)), int(np.searchsorted(freqs, 4000.0, "right")))
        # Windowed-sinc low-pass for the pitch analysis: broadband noise above it would mask voicing.
        k = np.arange(_LOWPASS_TAPS) - (_LOWPASS_TAPS - 1) / 2
        cutoff = min(_LOWPASS_HZ, sample_rate / 2) / sample_rate
        taps = 2 * cutoff * np.sinc(2 * cutoff * k) * np.hanning(_LOWPASS_TAPS)
        # Reversed, so that output j is ``taps @ audio[j : j + _LOWPASS_TAPS]`` (a correlation).
        self._taps = (taps / taps.sum())[::-1].copy()
        self._rfft = _rfft_into(_NFFT) or _rfft_copy
        self._rfft_pitch = _rfft_into(self._pitch_nfft) or _rfft_copy
        self._irfft = _irfft_into(self._pitch_nfft)
        self._lags = np.arange(1, self.max_lag + 1, dtype=np.float64)
        self._lag_index = np.arange(self.max_lag + 1)
        self._neighbours = np.array([-1, 0, 1])
        self._peak_ends = np.array([0, 7])
        self._ws: _Workspace | None = None

    def lowpass(self, audio: np.ndarray) -> np.ndarray:
        """Every ``decimation``-th sample of the filtered signal, from the first, where the filter lies
        wholly inside ``audio``.

        Filtering the buffer once is 4x cheaper than filtering each of the overlapping frames, and only
        the kept samples are computed. Each is the dot product of its own input samples in a fixed
        order, so it does not depend on where ``audio`` starts or ends.
        """
        audio = np.asarray(audio, dtype=np.float64)
        n_out = (audio.size - _LOWPASS_TAPS) // self.decimation + 1
        if n_out <= 0:
            return np.zeros(0)
        step = audio.strides[0]
        windows = np.ndarray((n_out, _LOWPASS_TAPS), np.float64, audio, 0, (step * self.decimation, step))
        return windows @ self._taps

    def analyse(self, frames: np.ndarray, low: np.ndarray) -> FrameFeatures:
        """Features of ``frames`` (n, frame_length), ``low`` their decimated filtered middles
        (n, pitch_length)."""
        level, peak_fraction = self.spectrum(frames)
        f0, aper = self.pitch(low)
        return FrameFeatures(level, aper, f0, peak_fraction)

    def spectrum(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Level (dBFS) and peak fraction of ``frames`` (n, frame_length)."""
        out = np.empty((2, frames.shape[0]))
        for i, j, b in self._blocks(frames.shape[0]):
            self._spectrum_block(frames[i:j], b, out[:, i:j])
        return out[0], out[1]

    def pitch(self, low: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pitch (Hz) and aperiodicity of the filtered frames ``low`` (n, pitch_length), or of its
        ``rows`` only."""
        n = low.shape[0] if rows is None else rows.size
        out = np.empty((2, n))
        for i, j, b in self._blocks(n):
            self._pitch_block(low[i:j] if rows is None else low[rows[i:j]], b, out[:, i:j])
        return out[0], out[1]

    def _blocks(self, n: int) -> list[tuple[int, int, _Block]]:
        """Blocks of at most ``_BLOCK_FRAMES`` of ``n`` frames, with the workspace views for each."""
        if not n:
            return []
        ws = self._ws = self._ws or _Workspace(self)
        return [
            (i, min(i + _BLOCK_FRAMES, n), ws.block(min(_BLOCK_FRAMES, n - i)))
            for i in range(0, n, _BLOCK_FRAMES)
        ]

    # Both blocks work in float64 in reused buffers with few numpy calls: on 10 frames (a 100 ms chunk)
    # each call's overhead costs about as much as its arithmetic. Every value is computed exactly as
    # by the plain per-frame expressions in the comments, so features do not depend on the block size.

    def _spectrum_block(self, frames: np.ndarray, b: _Block, out: np.ndarray) -> None:
        """Level and tonality from the power spectrum |rfft|^2 over 60-4000 Hz, into ``out`` rows."""
        n, half = self.analysis_length, (_LOWPASS_TAPS - 1) // 2
        level, peak_fraction = out
        # The raw span aligned with the filtered one (the filter delays by half its length).
        np.multiply(frames[:, half : half + n], self._window, out=b.windowed)
        self._rfft(b.fft_raw, b.spec_raw)
        band = np.square(np.abs(b.spec_band, out=b.band), out=b.band)
        # Running sums of the band's power, padded with 3 zeros before and 3 totals after, so that the
        # 7 bins around the peak (clipped to the band) are ``cum[peak + 7] - cum[peak]``.
        cum = b.cum
        np.cumsum(band, axis=1, out=b.cum_band)
        total = b.cum_total
        b.cum_after[...] = total[:, None]
        np.log10(np.add(np.multiply(total, self._ms_scale, out=level), 1e-10, out=level), out=level)
        np.multiply(level, 10.0, out=level)
        around = cum[b.rows[:, None], np.argmax(band, axis=1)[:, None] + self._peak_ends]
        np.divide(around[:, 1] - around[:, 0], total + _POWER_EPS, out=peak_fraction)

    def _pitch_block(self, low: np.ndarray, b: _Block, out: np.ndarray) -> None:
        """YIN pitch and aperiodicity of filtered frames, into ``out`` rows (f0, aperiodicity)."""
        n, w, t_max = self.pitch_length, self.integration, self.max_lag
        f0, aper = out
        # Autocorrelation of the head (YIN's integration window) against the span:
        # irfft(conj(rfft(head)) * rfft(span)), both rffts in one call.
        b.head[:, :w] = low[:, :w]
        b.full[:, :n] = low
        self._rfft_pitch(b.fft_low, b.spec_low)
        np.multiply(np.conjugate(b.spec_head, out=b.spec_head), b.spec_full, out=b.spec_head)
        self._irfft(b.spec_head, b.acf)

        # YIN difference: d(t) = e0 + e(t) - 2 acf(t) (>= 0), e(t) the energy of x[t : t + w].
        energy = b.energy
        np.cumsum(np.multiply(low, low, out=b.square), axis=1, out=b.energy_cum)
        e0 = energy[:, w]  # energy[:, w] - energy[:, 0], whose column 0 is zero
        diff = np.subtract(b.energy_hi, b.energy_lo, out=b.diff)
        np.add(e0[:, None], diff, out=diff)
        np.subtract(diff, np.multiply(b.acf_lags, 2.0, out=b.acf_lags), out=diff)
        np.maximum(diff, 0.0, out=diff)
        # Cumulative mean normalised difference: d(t) * t / sum(d(1..t)), 1 at lag 0.
        lags = self._lags
        running = np.cumsum(b.diff_1, axis=1, out=b.running)
        # Near-silent frames have running sums of ~0: call them fully aperiodic rather than divide.
        ok = np.greater(running, np.multiply(1e-9 * (e0 + 1e-20)[:, None], lags, out=b.tiny), out=b.ok)
        cmnd = b.cmnd
        b.cmnd_used.fill(1.0)
        np.divide(np.multiply(b.diff_1, lags, out=b.tiny), running, out=b.cmnd_1, where=ok)

        # Pitch: the first lag from 2 on below the threshold (else the lowest), then down to the bottom
        # of that dip (YIN step 4): the first lag from there whose successor is not lower, or the last.
        below = np.less(b.cmnd_2, self.threshold, out=b.below)
        first = np.argmax(below, axis=1)
        rows = b.rows
        has_dip = below[rows, first]
        stop = b.stop  # its last column stays True
        np.logical_not(np.less(b.cmnd_1, b.cmnd_0, out=b.stop_0), out=b.stop_0)
        np.logical_and(stop, np.greater_equal(self._lag_index, first[:, None] + 2, out=b.after), out=b.after)
        tau = np.where(has_dip, np.argmax(b.after, axis=1), np.argmin(b.cmnd_2, axis=1) + 2)
        # The lag and its neighbours; tau >= 2, and cmnd has a spare column of ones after t_max.
        left, here, right = cmnd[rows[:, None], tau[:, None] + self._neighbours].T
        # Parabolic interpolation gives sub-sample lags, so pitch movement is not hidden by rounding
        # (at 4 kHz a lag step is 1-10 % of the pitch), and the aperiodicity at the dip's true bottom
        # rather than at the nearest whole lag, which can lie a quarter period of the sampling off it.
        denom = left - 2.0 * here + right
        inner = (tau > 2) & (tau < t_max) & (np.abs(denom) > 1e-12)
        shift = np.zeros(tau.shape)
        np.divide(0.5 * (left - right), denom, out=shift, where=inner)
        np.minimum(np.maximum(shift, -0.5, out=shift), 0.5, out=shift)
        np.maximum(np.subtract(here, 0.25 * (left - right) * shift, out=aper), 0.0, out=aper)
        np.divide(self.pitch_rate, tau + shift, out=f0)


_BLOCK_FRAMES = 50
"""Frames analysed together at most: a 100 ms chunk is 10; a batch call goes in blocks of this many,
so the reused buffers (~4 MB) never grow with the input."""


class _Workspace:
    """Float64 buffers for a block of up to ``_BLOCK_FRAMES`` frames, reused across calls: allocating
    them afresh (and their page faults) costs more than the arithmetic."""

    def __init__(self, analyser: FrameAnalyser) -> None:
        m, n, t_max = _BLOCK_FRAMES, analyser.pitch_length, analyser.max_lag
        n_pitch = analyser._pitch_nfft
        # A weak reference: the analyser holds this workspace, and a cycle would keep both (and these
        # buffers, ~1 MB) alive until the cyclic garbage collector happens to run.
        self._analyser = weakref.ref(analyser)
        self.fft_low = np.zeros((2, m, n_pitch))
        """Head and span of the decimated filtered frames; columns past them are zero padding."""
        self.spec_low = np.empty((2, m, n_pitch // 2 + 1), dtype=np.complex128)
        self.fft_raw = np.zeros((m, _NFFT))
        """Windowed raw spans; columns past them are the zero padding and stay zero."""
        self.spec_raw = np.empty((m, _NFFT // 2 + 1), dtype=np.complex128)
        self.acf = np.empty((m, n_pitch))
        self.energy = np.zeros((m, n + 1))  # column 0 stays zero: the cumulative sums start from it
        self.square = np.empty((m, n))
        self.diff = np.empty((m, t_max + 1))
        self.running = np.empty((m, t_max))
        self.tiny = np.empty((m, t_max))
        self.ok = np.empty((m, t_max), dtype=bool)
        self.cmnd = np.ones((m, t_max + 2))  # the last column (a spare after lag t_max) stays 1
        self.below = np.empty((m, t_max - 1), dtype=bool)
        self.stop = np.ones((m, t_max + 1), dtype=bool)  # the last column stays True
        self.after = np.empty((m, t_max + 1), dtype=bool)
        band = analyser._band
        self.band = np.empty((m, band.stop - band.start))
        self.cum = np.zeros((m, band.stop - band.start + 7))  # columns 0-3 stay zero
        self.blocks: dict[int, _Block] = {}

    @property
    def analyser(self) -> FrameAnalyser:
        analyser = self._analyser()
        assert analyser is not None  # the analyser owns this workspace
        return analyser

    def block(self, m: int) -> _Block:
        b = self.blocks.get(m)
        if b is None:
            b = self.blocks[m] = _Block(self, m)
        return b


class _Block:
    """Views of the workspace for ``m`` frames, made once per ``m`` (each slice costs ~0.3 us)."""

    def __init__(self, ws: _Workspace, m: int) -> None:
        a = ws.analyser
        w, t_max = a.integration, a.max_lag
        self.fft_low, self.spec_low = ws.fft_low[:, :m], ws.spec_low[:, :m]
        self.fft_raw, self.spec_raw = ws.fft_raw[:m], ws.spec_raw[:m]
        self.head, self.full = ws.fft_low[0, :m], ws.fft_low[1, :m]
        self.windowed = self.fft_raw[:, : a.analysis_length]
        self.spec_head, self.spec_full = ws.spec_low[0, :m], ws.spec_low[1, :m]
        self.spec_band = ws.spec_raw[:m, a._band]
        self.acf = ws.acf[:m]
        self.acf_lags = ws.acf[:m, : t_max + 1]
        self.energy, self.energy_cum = ws.energy[:m], ws.energy[:m, 1:]
        self.energy_hi, self.energy_lo = ws.energy[:m, w : w + t_max + 1], ws.energy[:m, : t_max + 1]
        self.square = ws.square[:m]
        self.diff, self.diff_1 = ws.diff[:m], ws.diff[:m, 1:]
        self.running, self.tiny, self.ok = ws.running[:m], ws.tiny[:m], ws.ok[:m]
        self.cmnd = ws.cmnd[:m]
        cmnd = ws.cmnd[:m, : t_max + 1]  # without the spare column
        self.cmnd_used, self.cmnd_0, self.cmnd_1, self.cmnd_2 = cmnd, cmnd[:, :-1], cmnd[:, 1:], cmnd[:, 2:]
        self.below = ws.below[:m]
        self.stop, self.stop_0, self.after = ws.stop[:m], ws.stop[:m, :-1], ws.after[:m]
        self.band, self.cum = ws.band[:m], ws.cum[:m]
        self.cum_band, self.cum_total, self.cum_after = ws.cum[:m, 4:-3], ws.cum[:m, -4], ws.cum[:m, -3:]
        self.rows = np.arange(m)


def _rfft_copy(x: np.ndarray, out: np.ndarray) -> None:
    """Row rfft of ``x`` into ``out`` where numpy cannot write into a given array (numpy 1.x)."""
    out[...] = np.fft.rfft(x, axis=-1)


def _irfft_into(n_fft: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A function writing the row irfft (length ``n_fft``) of its first argument into its second."""
    try:
        np.fft.irfft(
            np.zeros((1, n_fft // 2 + 1), dtype=np.complex128), n_fft, axis=1, out=np.empty((1, n_fft))
        )
    except TypeError:  # numpy 1.x has no ``out``

        def copy(spec: np.ndarray, out: np.ndarray) -> np.ndarray:
            out[...] = np.fft.irfft(spec, n_fft, axis=1)
            return out

        return copy
    return lambda spec, out: np.fft.irfft(spec, n_fft, axis=1, out=out)


class VoiceActivityDetector:
    """Streaming VAD: ``push`` 16 kHz audio, get speech labels for frames whose delay has passed."""

    def __init__(self, settings: VadSettings | None = None, frontend: FrontendSettings | None = None) -> None:
        self.settings = s = settings or VadSettings()
        self.frontend = frontend or FrontendSettings()
        self.sample_rate = self.frontend.sample_rate
        self.hop_length = self.frontend.hop_length
        self.analyser = FrameAnalyser(s, self.sample_rate, self.hop_length)
        self.frame_seconds = self.hop_length / self.sample_rate

        def frames(seconds: float) -> int:
            return round(seconds / self.frame_seconds)

        self.back = frames(s.context_seconds)
        self.ahead = frames(s.lookahead_seconds)
        self.preroll = frames(s.preroll_seconds)
        self.hangover = frames(s.hangover_seconds)
        self.min_voiced = max(1, frames(s.min_voiced_seconds))
        self.delay_frames = self.ahead + self.preroll
        """Labels for frame ``i`` are known once frame ``i + delay_frames`` has been analysed."""
        self._rise = s.floor_rise_db_per_second * self.frame_seconds
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0)  # float64 holding float32 samples exactly
        self._pending_low = np.zeros(0)  # the (decimated) low-pass output for the pending samples' start
        self._floor: float | None = None
        self._base = 0  # frame index of the first column of the history
        self._history = np.zeros((_N_ROWS, 0))
        """Per frame: the values whose windowed sums decide candidates (rows _ACTIVE ... _MOVED)."""
        self._level = self._history[_LEVEL]
        self._last_voiced = False
        self._last_logf0 = 0.0
        self._cand = np.zeros(0, dtype=bool)  # candidates for frames [_base, _base + len(_cand))
        self.frames_analysed = 0
        self.frames_labelled = 0
        self.last_level_db = -100.0
        """Level of the most recently analysed frame (for a meter)."""

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Add samples; return labels (bool, True = speech) for the next frames now settled."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        buf = np.concatenate((self._pending, audio), dtype=np.float64)
        n_len, hop = self.analyser.frame_length, self.hop_length
        n = 0 if buf.size < n_len else 1 + (buf.size - n_len) // hop
        if n:
            # Filter only samples not filtered before: the start of the pending samples was, for the
            # last frames (each output depends only on its own input samples, so this is exact).
            a = self.analyser
            q, n_low = a.decimation, a.pitch_length
            done = self._pending_low.size * q
            end = (n - 1) * hop + (n_low - 1) * q + 1
            low = np.concatenate((self._pending_low, a.lowpass(buf[done : end + _LOWPASS_TAPS - 1])))
            # Overlapping frames as strided views of the buffers, not copies.
            frames = np.ndarray((n, n_len), np.float64, buf, 0, (hop * 8, 8))
            low_frames = np.ndarray((n, n_low), np.float64, low, 0, (hop // q * 8, 8))
            self._add(frames, low_frames)
            self._pending_low = low[n * hop // q :].copy()
        self._pending = buf[n * hop :].copy()
        return self._settle(final=False)

    def flush(self) -> np.ndarray:
        """End of stream: label the remaining frames (zero-padded like the front end's last frames)."""
        total = self.frames_analysed * self.hop_length + self._pending.size
        # Pad so that every frame the front end makes from these samples gets a label.
        want = self.frontend.n_frames(total)
        missing = want - self.frames_analysed
        out = []
        if missing > 0:
            pad = (missing - 1) * self.hop_length + self.analyser.frame_length - self._pending.size
            out.append(self.push(np.zeros(max(pad, 0), dtype=np.float32)))
        out.append(self._settle(final=True))
        self.reset()
        return np.concatenate(out) if out else np.zeros(0, dtype=bool)

    def _add(self, frames: np.ndarray, low: np.ndarray) -> None:
        """Analyse new frames (raw and filtered) and append what the candidates need to the history."""
        s = self.settings
        level_db, peak_fraction = self.analyser.spectrum(frames)
        k = level_db.size
        floors = np.empty(k)
        floor = self._floor
        for i, level in enumerate(level_db.tolist()):  # a recursive minimum tracker: sequential
            floor = level if floor is None else min(level, floor + self._rise)
            floors[i] = floor
        self._floor = floor
        active = (level_db >= floors + s.snr_db) & (level_db >= s.min_level_db)
        # Only active frames can be voiced, and the pitch of the others is never used: skip their
        # pitch analysis (most of the cost), which leaves them without a pitch (NaN).
        f0 = np.full(k, np.nan)
        aperiodicity = np.ones(k)
        rows = np.flatnonzero(active)
        if rows.size:
            f0[rows], aperiodicity[rows] = self.analyser.pitch(low, None if rows.size == k else rows)
        feat = FrameFeatures(level_db, aperiodicity, f0, peak_fraction)
        voiced = (
            active
            & (feat.aperiodicity < s.voicing_threshold)
            & (feat.f0_hz >= s.f0_min_hz)
            & (feat.f0_hz <= s.f0_max_hz)
            & (feat.peak_fraction <= s.tone_peak_fraction)
        )
        logf0 = np.log(feat.f0_hz)
        new = np.empty((_N_ROWS, k))
        new[_ACTIVE] = active
        new[_LEVEL] = np.where(active, level_db, 0.0)
        np.square(new[_LEVEL], out=new[_LEVEL_SQ])
        new[_VOICED] = voiced
        # Pairs (j-1, j) of consecutive voiced frames, counted at j, and those whose pitch moved.
        pair = np.empty(k, dtype=bool)
        pair[0] = self._last_voiced
        pair[1:] = voiced[:-1]
        pair &= voiced
        step = np.empty(k)
        step[0] = logf0[0] - self._last_logf0
        np.subtract(logf0[1:], logf0[:-1], out=step[1:])
        new[_PAIR] = pair
        new[_MOVED] = pair & (np.abs(step, out=step) > PITCH_STEP)
        self._last_voiced, self._last_logf0 = bool(voiced[-1]), float(logf0[-1])
        self._history = np.concatenate((self._history, new), axis=1)
        self._level = self._history[_LEVEL]
        self.frames_analysed += k
        self.last_level_db = float(level_db[-1])

    def _candidates(self, first: int, stop: int, end: int) -> np.ndarray:
        """Speech candidates for frames [first, stop), using history up to frame ``end`` (exclusive)."""
        s, b = self.settings, self._base
        # Each frame's context [lo, hi) as columns of the history.
        lo = np.maximum(np.arange(first - self.back - b, stop - self.back - b), 0)
        hi = np.minimum(np.arange(first + self.ahead + 1 - b, stop + self.ahead + 1 - b), end - b)
        # Window sums as differences of running sums (all rows in one cumsum).
        hist = self._history[:, : end - b]
        c = np.zeros((_N_ROWS, hist.shape[1] + 1))
        np.cumsum(hist, axis=1, out=c[:, 1:])
        at_hi = c[:, hi]
        sums = at_hi - c[:, lo]
        n_active = np.maximum(sums[_ACTIVE], 1)
        mean = sums[_LEVEL] / n_active
        spread = np.sqrt(np.maximum(sums[_LEVEL_SQ] / n_active - mean**2, 0.0))
        # Both frames of a pair must lie inside the context.
        n_pairs, n_moved = at_hi[_PAIR:] - c[_PAIR:, np.minimum(lo + 1, hi)]
        return (
            (hist[_VOICED, first - b : stop - b] > 0)
            & (sums[_VOICED] >= self.min_voiced)
            & (spread >= s.modulation_db)
            & (n_pairs > 0)
            & (n_moved >= s.pitch_moving_fraction * n_pairs)
        )

    def _settle(self, final: bool) -> np.ndarray:
        end = self.frames_analysed
        # Candidates need `ahead` frames after them; labels need candidates `preroll` frames ahead.
        cand_stop = end if final else max(end - self.ahead, self._base + self._cand.size)
        cand_start = self._base + self._cand.size
        if cand_stop > cand_start:
            self._cand = np.concatenate((self._cand, self._candidates(cand_start, cand_stop, end)))
        label_stop = end if final else max(cand_stop - self.preroll, self.frames_labelled)
        first = self.frames_labelled
        if label_stop <= first:
            return np.zeros(0, dtype=bool)
        # A frame is speech if a candidate lies within [i - hangover, i + preroll].
        b = self._base
        cand = self._cand
        cs = np.zeros(cand.size + 1, dtype=np.int64)
        np.cumsum(cand, out=cs[1:])
        lo = np.maximum(np.arange(first - self.hangover - b, label_stop - self.hangover - b), 0)
        hi = np.minimum(np.arange(first + self.preroll + 1 - b, label_stop + self.preroll + 1 - b), cand.size)
        labels = cs[hi] - cs[lo] > 0
        self.frames_labelled = label_stop
        self._trim()
        return labels

    def _trim(self) -> None:
        """Drop history no future computation needs, so memory stays bounded."""
        oldest_needed = min(
            self.frames_labelled - self.hangover,  # candidates for the hangover of the next label
            self._base + self._cand.size - self.back - 1,  # history for the next candidate's context
        )
        drop = oldest_needed - self._base
        if drop <= 0:
            return
        self._base += drop
        self._history = self._history[:, drop:]
        self._level = self._history[_LEVEL]
        self._cand = self._cand[drop:]


def detect_speech(
    audio: np.ndarray, settings: VadSettings | None = None, frontend: FrontendSettings | None = None
) -> np.ndarray:
    """Speech labels for every front-end frame of a whole recording (the batch form of the detector)."""
    vad = VoiceActivityDetector(settings, frontend)
    return np.concatenate((vad.push(audio), vad.flush()))

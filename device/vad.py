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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import VoicegenderError
from .frontend import FrontendSettings

PITCH_STEP = 0.002
"""Relative pitch change between consecutive frames (0.2 %) that counts as the pitch moving."""
_NFFT = 1024
_LOWPASS_HZ = 1000.0
_LOWPASS_TAPS = 63
_POWER_EPS = 1e-12


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
    f0_max_hz: float = 400.0
    """Highest voice pitch (Hz) accepted as speech; a periodic frame with a higher pitch is a tone."""
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
    lookahead_seconds: float = 0.1
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
    """YIN cumulative mean normalised difference at the chosen lag (0 = periodic)."""
    f0_hz: np.ndarray
    """Pitch of the first YIN dip (may lie outside the voice range: then the frame is a tone)."""
    peak_fraction: np.ndarray
    """Share of 60-4000 Hz power within +-3 bins of the strongest spectral bin."""


class FrameAnalyser:
    """Computes ``FrameFeatures`` for frames of ``frame_length`` samples (vectorised, stateless)."""

    def __init__(self, settings: VadSettings, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.max_lag = math.ceil(sample_rate / settings.f0_min_hz)
        # Two periods of the lowest pitch: YIN needs max_lag samples beyond its integration window.
        self.analysis_length = n = 2 * self.max_lag + 100
        self.integration = n - self.max_lag
        self.frame_length = n + _LOWPASS_TAPS - 1
        """Input samples per frame: the analysis span plus the low-pass filter's support."""
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
        self._taps = taps / taps.sum()

    def lowpass(self, audio: np.ndarray) -> np.ndarray:
        """The filtered signal where the filter lies wholly inside ``audio`` (``taps - 1`` shorter).

        Filtering the buffer once is 4x cheaper than filtering each of the overlapping frames.
        """
        return np.convolve(np.asarray(audio, dtype=np.float64), self._taps, mode="valid")

    def analyse(self, frames: np.ndarray, low: np.ndarray) -> FrameFeatures:
        """Features of ``frames`` (n, frame_length), ``low`` being their filtered middles."""
        x = np.asarray(frames, dtype=np.float64)
        n_frames, n, half = x.shape[0], self.analysis_length, (_LOWPASS_TAPS - 1) // 2
        f0, aper = self._pitch(low)
        # The raw span aligned with the filtered one (the filter delays by half its length).
        power = np.abs(np.fft.rfft(x[:, half : half + n] * self._window, _NFFT, axis=1)) ** 2
        band = power[:, self._band]
        cum = np.concatenate((np.zeros((n_frames, 1)), np.cumsum(band, axis=1)), axis=1)
        level = 10.0 * np.log10(cum[:, -1] * self._ms_scale + 1e-10)
        peak = np.argmax(band, axis=1)
        rows = np.arange(n_frames)
        lo = np.maximum(peak - 3, 0)
        hi = np.minimum(peak + 4, band.shape[1])
        peak_fraction = (cum[rows, hi] - cum[rows, lo]) / (cum[:, -1] + _POWER_EPS)
        return FrameFeatures(level, aper, f0, peak_fraction)

    def _pitch(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """YIN: first lag whose normalised difference dips below the threshold (else the minimum)."""
        n_frames, w, t_max = x.shape[0], self.integration, self.max_lag
        if n_frames == 0:
            return np.zeros(0), np.ones(0)
        head = np.fft.rfft(x[:, :w], _NFFT, axis=1)
        full = np.fft.rfft(x, _NFFT, axis=1)
        acf = np.fft.irfft(np.conj(head) * full, _NFFT, axis=1)[:, : t_max + 1]
        energy = np.concatenate((np.zeros((n_frames, 1)), np.cumsum(x * x, axis=1)), axis=1)
        e0 = energy[:, w] - energy[:, 0]
        e_lag = energy[:, w : w + t_max + 1] - energy[:, : t_max + 1]
        diff = np.maximum(e0[:, None] + e_lag - 2.0 * acf, 0.0)
        lags = np.arange(1, t_max + 1)
        running = np.cumsum(diff[:, 1:], axis=1)
        # Near-silent frames have running sums of ~0: call them fully aperiodic rather than divide.
        cmnd = np.ones_like(diff)
        ok = running > 1e-9 * (e0[:, None] + 1e-20) * lags
        cmnd[:, 1:] = np.where(ok, diff[:, 1:] * lags / np.where(ok, running, 1.0), 1.0)
        search = cmnd[:, 2:]
        below = search < self.threshold
        has_dip = below.any(axis=1)
        tau = np.where(has_dip, np.argmax(below, axis=1), np.argmin(search, axis=1)) + 2
        # Walk down to the bottom of the dip (YIN step 4); at most a few lags, so a short loop.
        for _ in range(t_max):
            nxt = np.minimum(tau + 1, t_max)
            step = has_dip & (tau < t_max) & (cmnd[np.arange(n_frames), nxt] < cmnd[np.arange(n_frames), tau])
            if not step.any():
                break
            tau = tau + step
        rows = np.arange(n_frames)
        aper = cmnd[rows, tau]
        # Parabolic interpolation gives sub-sample lags, so pitch movement is not hidden by rounding.
        left = cmnd[rows, np.maximum(tau - 1, 1)]
        right = cmnd[rows, np.minimum(tau + 1, t_max)]
        denom = left - 2.0 * aper + right
        inner = (tau > 2) & (tau < t_max) & (np.abs(denom) > 1e-12)
        shift = np.where(inner, 0.5 * (left - right) / np.where(inner, denom, 1.0), 0.0)
        f0 = self.sample_rate / (tau + np.clip(shift, -0.5, 0.5))
        return f0, aper


class VoiceActivityDetector:
    """Streaming VAD: ``push`` 16 kHz audio, get speech labels for frames whose delay has passed."""

    def __init__(self, settings: VadSettings | None = None, frontend: FrontendSettings | None = None) -> None:
        self.settings = s = settings or VadSettings()
        self.frontend = frontend or FrontendSettings()
        self.sample_rate = self.frontend.sample_rate
        self.hop_length = self.frontend.hop_length
        self.analyser = FrameAnalyser(s, self.sample_rate)
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
        self._pending = np.zeros(0, dtype=np.float32)
        self._floor: float | None = None
        self._base = 0  # frame index of the first entry in the history arrays
        self._level = np.zeros(0)
        self._active = np.zeros(0, dtype=bool)
        self._voiced = np.zeros(0, dtype=bool)
        self._logf0 = np.zeros(0)
        self._cand = np.zeros(0, dtype=bool)  # candidates for frames [_base, _base + len(_cand))
        self.frames_analysed = 0
        self.frames_labelled = 0
        self.last_level_db = -100.0
        """Level of the most recently analysed frame (for a meter)."""

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Add samples; return labels (bool, True = speech) for the next frames now settled."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        buf = np.concatenate((self._pending, audio)) if self._pending.size else audio
        n_len, hop = self.analyser.frame_length, self.hop_length
        n = 0 if buf.size < n_len else 1 + (buf.size - n_len) // hop
        if n:
            starts = hop * np.arange(n)[:, None]
            low = self.analyser.lowpass(buf[: (n - 1) * hop + n_len])
            frames = buf[np.arange(n_len)[None, :] + starts]
            self._add(
                self.analyser.analyse(frames, low[np.arange(self.analyser.analysis_length)[None, :] + starts])
            )
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

    def _add(self, feat: FrameFeatures) -> None:
        s = self.settings
        floors = np.empty(feat.level_db.size)
        floor = self._floor
        for i, level in enumerate(feat.level_db.tolist()):  # a recursive minimum tracker: sequential
            floor = level if floor is None else min(level, floor + self._rise)
            floors[i] = floor
        self._floor = floor
        active = (feat.level_db >= floors + s.snr_db) & (feat.level_db >= s.min_level_db)
        voiced = (
            active
            & (feat.aperiodicity < s.voicing_threshold)
            & (feat.f0_hz >= s.f0_min_hz)
            & (feat.f0_hz <= s.f0_max_hz)
            & (feat.peak_fraction <= s.tone_peak_fraction)
        )
        self._level = np.concatenate((self._level, feat.level_db))
        self._active = np.concatenate((self._active, active))
        self._voiced = np.concatenate((self._voiced, voiced))
        self._logf0 = np.concatenate((self._logf0, np.log(feat.f0_hz)))
        self.frames_analysed += feat.level_db.size
        if feat.level_db.size:
            self.last_level_db = float(feat.level_db[-1])

    def _candidates(self, first: int, stop: int, end: int) -> np.ndarray:
        """Speech candidates for frames [first, stop), using history up to frame ``end`` (exclusive)."""
        s, b = self.settings, self._base
        idx = np.arange(first, stop)
        lo = np.maximum(idx - self.back, b) - b
        hi = np.minimum(idx + self.ahead + 1, end) - b

        def window_sum(x: np.ndarray, start: np.ndarray = lo) -> np.ndarray:
            c = np.concatenate(([0.0], np.cumsum(x, dtype=np.float64)))
            return c[hi] - c[start]

        active, voiced = self._active[: end - b], self._voiced[: end - b]
        level = np.where(active, self._level[: end - b], 0.0)
        n_active = np.maximum(window_sum(active), 1)
        mean = window_sum(level) / n_active
        spread = np.sqrt(np.maximum(window_sum(level**2) / n_active - mean**2, 0.0))
        # Pairs (j-1, j) of voiced frames, counted at j; both frames must lie inside the context.
        pair = np.zeros(voiced.size, dtype=bool)
        pair[1:] = voiced[1:] & voiced[:-1]
        moved = pair & np.concatenate(([False], np.abs(np.diff(self._logf0[: end - b])) > PITCH_STEP))
        pair_lo = np.minimum(lo + 1, hi)
        n_pairs = window_sum(pair, pair_lo)
        n_moved = window_sum(moved, pair_lo)
        return (
            voiced[idx - b]
            & (window_sum(voiced) >= self.min_voiced)
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
        cs = np.concatenate(([0], np.cumsum(cand, dtype=np.int64)))
        idx = np.arange(first, label_stop)
        lo = np.maximum(idx - self.hangover, b) - b
        hi = np.minimum(idx + self.preroll + 1, b + cand.size) - b
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
        self._level = self._level[drop:]
        self._active = self._active[drop:]
        self._voiced = self._voiced[drop:]
        self._logf0 = self._logf0[drop:]
        self._cand = self._cand[drop:]


def detect_speech(
    audio: np.ndarray, settings: VadSettings | None = None, frontend: FrontendSettings | None = None
) -> np.ndarray:
    """Speech labels for every front-end frame of a whole recording (the batch form of the detector)."""
    vad = VoiceActivityDetector(settings, frontend)
    return np.concatenate((vad.push(audio), vad.flush()))

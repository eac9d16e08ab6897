"""Audio chunks in, state changes and decisions out: resampler -> front end -> VAD -> model -> decider.

``StreamProcessor`` holds no audio beyond what its stages need (the resampler's filter span, the
front end's last window, the VAD's context and the MFCC frames of one model window plus the VAD's
label delay), so memory stays bounded however long it runs. Timestamps are seconds from the start
of the input, counted in samples, so a file run can be checked against the file's timeline.
``classify_audio`` runs the same stages over a whole recording and pools them into one decision.
"""

from __future__ import annotations

import dataclasses
import math
import weakref

import numpy as np

from .decision import DecisionSettings, Event, FrameClock, UtteranceDecider, no_speech
from .events import Decision
from .frontend import StreamingFrontend
from .model import Thresholds, sigmoid
from .resample import StreamingResampler
from .vad import VadSettings, VoiceActivityDetector


class StreamProcessor:
    """Streaming classification of one audio stream at ``input_rate`` Hz (any chunk sizes).

    ``model`` needs ``metadata`` (front end, window and hop frames, thresholds) and
    ``logits(windows)``, as ``model.Model`` has.
    """

    def __init__(
        self,
        model: object,
        vad: VadSettings,
        decision: DecisionSettings,
        input_rate: int,
        thresholds: Thresholds | None = None,
        origin: float = 0.0,
    ) -> None:
        self.model = model
        meta = model.metadata  # type: ignore[attr-defined]
        fe = meta.frontend
        self.input_rate = input_rate
        self.origin = origin
        """Seconds added to every timestamp (time of this stream's first sample in the input)."""
        self.resampler = StreamingResampler(input_rate, fe.sample_rate)
        self.frontend = StreamingFrontend(fe)
        self.vad = VoiceActivityDetector(vad, fe)
        self.window_frames, self.hop_frames = meta.window_frames, meta.hop_frames
        clock = FrameClock(
            fe.hop_length / fe.sample_rate,
            fe.win_length / fe.sample_rate,
            meta.window_frames,
            meta.hop_frames,
            origin,
        )
        thresholds = thresholds or decision.thresholds(meta.thresholds)
        # The decider calls back through a weak reference: a bound method would make a cycle that
        # keeps every stage's buffers alive until the cyclic garbage collector runs (an API server
        # makes a processor per stream and per upload).
        score = weakref.WeakMethod(self._score)
        self.decider = UtteranceDecider(decision, thresholds, clock, lambda start: score()(start))
        self._mfcc = np.zeros((0, fe.n_mfcc), dtype=np.float32)
        self._mfcc_base = 0  # frame index of self._mfcc[0]
        self.samples_in = 0
        """Input samples pushed so far."""
        self.windows_scored = 0
        """Model windows run so far (only windows that are mostly speech are scored)."""
        self.speech_frames = 0
        """Frames the VAD labelled speech so far."""
        self._frame_seconds = fe.hop_length / fe.sample_rate
        # One window, plus the pause that ends an utterance.
        self._min_input_seconds = meta.window_seconds + decision.end_of_utterance_seconds

    @property
    def position(self) -> float:
        """Seconds of input consumed (the stream's "now")."""
        return self.origin + self.samples_in / self.input_rate

    @property
    def level_db(self) -> float:
        """Level (dBFS, 60-4000 Hz) of the latest analysed frame, for a meter."""
        return self.vad.last_level_db

    @property
    def speech_seconds(self) -> float:
        return self.speech_frames * self._frame_seconds

    def abandon(self) -> list[Event]:
        """The input was lost: end an utterance in progress without a decision."""
        return self.decider.abandon()

    def configure(self, decision: DecisionSettings, thresholds: Thresholds) -> None:
        """New decision settings at run time (config reload)."""
        self.decider.configure(decision, thresholds)

    def push(self, chunk: np.ndarray) -> list[Event]:
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self.samples_in += chunk.size
        return self._process(self.resampler.push(chunk), final=False)

    def flush(self) -> list[Event]:
        """End of input: process what is buffered and decide the utterance in progress. Input shorter
        than one model window (a file holding a single word) is first padded with silence, so the
        word has a window to be scored in, as it would on a live microphone."""
        events: list[Event] = []
        short = self._min_input_seconds * self.input_rate - self.samples_in
        if short > 0:
            events += self.push(np.zeros(int(np.ceil(short)), dtype=np.float32))
        events += self._process(self.resampler.flush(), final=True)
        return events + self.decider.flush()

    def _process(self, audio: np.ndarray, final: bool) -> list[Event]:
        frames = self.frontend.push(audio)
        if frames.size:
            self._mfcc = np.concatenate((self._mfcc, frames))
        labels = self.vad.push(audio)
        if final:
            labels = np.concatenate((labels, self.vad.flush()))
        self.speech_frames += int(np.count_nonzero(labels))
        events = self.decider.push(labels)
        # Keep only the frames the next windows can still need (those after the last full window).
        keep_from = max(self.decider.frame - self.window_frames + 1, self._mfcc_base)
        drop = keep_from - self._mfcc_base
        if drop > 0:
            self._mfcc = self._mfcc[drop:]
            self._mfcc_base = keep_from
        return events

    def _score(self, start_frame: int) -> float:
        start = start_frame - self._mfcc_base
        frames = self._mfcc[start : start + self.window_frames]
        self.windows_scored += 1
        return float(self.model.logits(frames[None])[0])  # type: ignore[attr-defined]


def classify_audio(
    audio: np.ndarray,
    sample_rate: int,
    model: object,
    vad: VadSettings | None = None,
    decision: DecisionSettings | None = None,
) -> Decision:
    """One decision for a whole recording, from exactly the windows the daemon scores for it.

    The recording runs through the daemon's stages with the same settings; the log-odds behind all
    its final decisions are pooled (so a recording of one utterance gets the daemon's decision,
    and one of several gets their windows' mean). Labels: male / female / uncertain from the pooled
    p_female; "uncertain" with no p_female when there is speech but too little to decide (no
    utterance reached ``min_speech_seconds`` with a window mostly speech); "no_speech" when the VAD
    heard no speech at all.
    """
    settings = dataclasses.replace(decision or DecisionSettings(), provisional=False)
    proc = StreamProcessor(model, vad or VadSettings(), settings, sample_rate)
    events: list[Event] = []
    block = 10 * sample_rate  # bounded working memory: the VAD's arrays grow with the block length
    for start in range(0, len(audio), block):
        events += proc.push(audio[start : start + block])
    events += proc.flush()
    finals = [e for e in events if isinstance(e, Decision) and e.final]
    decider = proc.decider
    if not finals:
        if proc.speech_frames == 0:
            return no_speech()
        return Decision("uncertain", math.nan, proc.speech_seconds, 0.0, 0.0, 0, final=True)
    p = float(sigmoid(decider.decided_logits / decider.decided_windows))
    return Decision(
        label=decider.thresholds.label(p),
        p_female=p,
        speech_seconds=sum(d.speech_seconds for d in finals),
        start=finals[0].start,
        end=finals[-1].end,
        windows=decider.decided_windows,
    )

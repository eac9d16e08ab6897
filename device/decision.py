"""Utterance-level decisions from per-frame speech labels and per-window model log-odds.

An utterance is a run of speech frames; pauses shorter than ``end_of_utterance_seconds`` join
segments into one utterance. Its p(female) is the sigmoid of the mean log-odds over the model
windows that are mostly speech. While the person speaks, a provisional decision follows each new
window once ``min_speech_seconds`` of speech are in; its label only changes when p(female) moves
``hysteresis`` past a threshold, so the LEDs do not flicker. The final decision, when the utterance
ends, uses the thresholds as they are, so it depends on p(female) alone.

Each utterance gets exactly one final decision. Speech that resumes within
``continue_within_seconds`` of the end continues the utterance, so its final decision waits until
that time has passed in silence (or the input ends); at the end of speech a provisional decision
with the final's label comes at once (if provisional decisions are on), so the LEDs need not wait.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import VoicegenderError
from .events import Decision, State
from .model import Thresholds, sigmoid

Event = State | Decision
"""What the decider reports: a state change (speech started/ended) or a decision."""


@dataclass(frozen=True)
class DecisionSettings:
    """How utterances become decisions ([decision] in the config)."""

    male_below: float = 0.0
    """p_female at or below this is "male"; 0 = the model's own threshold."""
    female_above: float = 0.0
    """p_female at or above this is "female"; 0 = the model's own threshold."""
    hysteresis: float = 0.05
    """A provisional label changes only once p_female is this far past the threshold it crosses."""
    min_speech_seconds: float = 0.25
    """Speech an utterance needs before any decision (a short word has about 0.3 s); shorter
    utterances get none."""
    min_window_speech: float = 0.25
    """A model window counts only when at least this share of its frames is speech (the model is
    trained on windows holding 0.25-0.9 s of speech among background)."""
    provisional: bool = True
    """Show provisional decisions while the person is still speaking."""
    end_of_utterance_seconds: float = 0.2
    """Non-speech that ends an utterance; shorter pauses join speech segments into one utterance."""
    continue_within_seconds: float = 0.8
    """Speech resuming this soon after an utterance ended continues it and the evidence is pooled
    (phrase pauses would otherwise split one voice into short, less reliable decisions); the final
    decision comes this long after the speech ends; 0 = never (final at once)."""
    max_utterance_seconds: float = 15.0
    """An utterance longer than this is decided and a new one begins (e.g. two people talking on)."""

    def __post_init__(self) -> None:
        problems = []
        for name in ("male_below", "female_above"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1) (0 = the model's threshold)")
        if self.male_below and self.female_above and self.male_below > self.female_above:
            problems.append("male_below must be <= female_above")
        if not 0.0 <= self.hysteresis < 0.5:
            problems.append("hysteresis must be in [0, 0.5)")
        if not 0.0 < self.min_window_speech <= 1.0:
            problems.append("min_window_speech must be in (0, 1]")
        if min(self.min_speech_seconds, self.end_of_utterance_seconds, self.continue_within_seconds) < 0:
            problems.append(
                "min_speech_seconds, end_of_utterance_seconds, continue_within_seconds must be >= 0"
            )
        if self.max_utterance_seconds < 1.0:
            problems.append("max_utterance_seconds must be >= 1")
        if problems:
            raise VoicegenderError(f"[decision]: {'; '.join(problems)}")

    def thresholds(self, model_default: Thresholds) -> Thresholds:
        """The thresholds in force: these settings where given, else the model's."""
        try:
            return Thresholds(
                male_below=self.male_below or model_default.male_below,
                female_above=self.female_above or model_default.female_above,
            )
        except VoicegenderError as exc:
            raise VoicegenderError(f"[decision] with the model's thresholds: {exc}") from None


def sticky_label(p_female: float, previous: str | None, thresholds: Thresholds, hysteresis: float) -> str:
    """The label for ``p_female``, keeping ``previous`` unless p is ``hysteresis`` past a threshold."""
    lo, hi = thresholds.male_below, thresholds.female_above
    if previous == "female" and p_female >= hi - hysteresis:
        return "female"
    if previous == "male" and p_female <= lo + hysteresis:
        return "male"
    if previous == "uncertain":
        if p_female >= hi + hysteresis:
            return "female"
        if p_female <= lo - hysteresis:
            return "male"
        return "uncertain"
    return thresholds.label(p_female)


@dataclass(frozen=True)
class FrameClock:
    """Frame and window geometry of the front end and model, for timestamps."""

    hop_seconds: float
    """Seconds between frame starts (10 ms)."""
    frame_seconds: float
    """Length of one frame (25 ms)."""
    window_frames: int
    """Frames per model window."""
    hop_frames: int
    """Frames between model windows."""
    origin: float = 0.0
    """Time of frame 0's first sample, in seconds from the start of the input."""

    def start(self, frame: int) -> float:
        return self.origin + frame * self.hop_seconds

    def end(self, frame: int) -> float:
        return self.origin + frame * self.hop_seconds + self.frame_seconds


class UtteranceDecider:
    """Consumes speech labels frame by frame, scores windows through ``score`` and emits events.

    ``score(start)`` must return the model's log-odds for the window of frames
    ``[start, start + window_frames)``; it is called only for windows that are mostly speech inside
    an utterance, so the model runs only while someone talks. The window grid starts with the
    utterance: its first window is scored as soon as one is mostly speech (checked every frame), the
    next ones every ``hop_frames`` after it, so the first decision does not wait for a fixed grid.
    """

    def __init__(
        self,
        settings: DecisionSettings,
        thresholds: Thresholds,
        clock: FrameClock,
        score: Callable[[int], float],
    ) -> None:
        self.settings = settings
        self.thresholds = thresholds
        self.clock = clock
        self.score = score
        self._recent = np.zeros(clock.window_frames, dtype=bool)  # ring of the last window's labels
        self.frame = 0
        """Index of the next frame to be labelled."""
        self._carry: tuple | None = None  # the last utterance's evidence, while it may still continue
        self._carry_until = -1
        # Its final decision and summed log-odds, due when it can no longer continue.
        self._pending: tuple[Decision, float] | None = None
        self.decided_logits = 0.0
        """Sum of the log-odds behind every final decision so far (``classify`` pools them)."""
        self.decided_windows = 0
        """Model windows behind every final decision so far."""
        self._reset_utterance()

    def configure(self, settings: DecisionSettings, thresholds: Thresholds) -> None:
        """New settings at run time (on reload); an utterance in progress carries on under them."""
        self.settings = settings
        self.thresholds = thresholds

    def _reset_utterance(self) -> None:
        self.in_utterance = False
        self._start = 0
        self._last_speech = 0
        self._speech_frames = 0
        self._sum_logits = 0.0
        self._windows = 0
        self._last_window_end = 0
        self._anchor: int | None = None  # start frame of the utterance's first window
        self._shown: str | None = None

    def push(self, labels: np.ndarray) -> list[Event]:
        """Labels for the next frames (True = speech); returns state changes and decisions in order."""
        events: list[Event] = []
        hop = self.clock.hop_seconds
        end_gap = round(self.settings.end_of_utterance_seconds / hop)
        max_frames = round(self.settings.max_utterance_seconds / hop)
        wf, hf = self.clock.window_frames, self.clock.hop_frames
        for speech in np.asarray(labels, dtype=bool).tolist():
            f = self.frame
            self._recent[f % wf] = speech
            if self._carry is not None and f > self._carry_until:
                events.extend(self._settle())
            if speech:
                if not self.in_utterance:
                    self.in_utterance = True
                    self._start = f
                    if self._carry is not None:
                        self._resume()
                    events.append(State.SPEECH)
                self._last_speech = f
                self._speech_frames += 1
            elif self.in_utterance and f - self._last_speech >= end_gap and (self._windows or f >= wf):
                # A word in the stream's first second waits for the first full window to be scored in.
                events.extend(self._finish(may_continue=True))
            if self.in_utterance:
                start = f - (wf - 1)
                on_grid = self._anchor is None or (start - self._anchor) % hf == 0
                if start >= 0 and on_grid and self._recent.sum() >= self.settings.min_window_speech * wf:
                    if self._anchor is None:
                        self._anchor = start
                    self._sum_logits += float(self.score(start))
                    self._windows += 1
                    self._last_window_end = f
                    if self.settings.provisional and self._enough():
                        events.append(self._provisional())
                elif self.settings.provisional and self._shown is None and self._enough():
                    events.append(self._provisional())  # enough speech now, between two windows
                if f - self._start + 1 >= max_frames:
                    events.extend(self._finish(end=f))
            self.frame += 1
        return events

    def flush(self) -> list[Event]:
        """End of input: decide the utterance in progress (or the one that might have continued)."""
        return self._finish() if self.in_utterance else self._settle()

    def abandon(self) -> list[Event]:
        """Input lost: drop an utterance in progress without a decision; one that had ended is
        decided."""
        events: list[Event] = [State.LISTENING] if self.in_utterance else self._settle()
        self._carry = self._pending = None
        self._reset_utterance()
        return events

    def _resume(self) -> None:
        """Continue the utterance that ended moments ago: its evidence and start carry over."""
        (self._start, self._speech_frames, self._sum_logits, self._windows, self._shown) = self._carry
        self._carry = self._pending = None

    def _settle(self) -> list[Event]:
        """The last utterance can no longer continue: its final decision, if it had one due."""
        pending, self._carry, self._pending = self._pending, None, None
        return [self._count(*pending)] if pending is not None else []

    def _count(self, decision: Decision, sum_logits: float) -> Decision:
        """Book a final decision's evidence (``decided_*``) and return it."""
        self.decided_logits += sum_logits
        self.decided_windows += decision.windows
        return decision

    def _enough(self) -> bool:
        return (
            self._windows > 0
            and self._speech_frames * self.clock.hop_seconds >= self.settings.min_speech_seconds
        )

    def _p_female(self) -> float:
        return float(sigmoid(self._sum_logits / self._windows))

    def _provisional(self) -> Decision:
        p = self._p_female()
        self._shown = sticky_label(p, self._shown, self.thresholds, self.settings.hysteresis)
        return self._decision(self._shown, p, self.clock.end(self._last_window_end), final=False)

    def _finish(self, end: int | None = None, may_continue: bool = False) -> list[Event]:
        events: list[Event] = []
        may_continue = may_continue and self.settings.continue_within_seconds > 0
        final = None
        if self._enough():
            p = self._p_female()
            last = self._last_speech if end is None else end
            final = self._decision(self.thresholds.label(p), p, self.clock.end(last), final=True)
            # If it may continue, the LEDs get the label now and the outputs the final decision later.
            if may_continue:
                if self.settings.provisional:
                    events.append(dataclasses.replace(final, final=False))
            else:
                events.append(self._count(final, self._sum_logits))
        events.append(State.LISTENING)
        if may_continue:
            # Kept even when too short to decide: with what follows it may be enough.
            self._carry = (self._start, self._speech_frames, self._sum_logits, self._windows, self._shown)
            self._carry_until = self._last_speech + round(
                self.settings.continue_within_seconds / self.clock.hop_seconds
            )
            self._pending = None if final is None else (final, self._sum_logits)
        self._reset_utterance()
        return events

    def _decision(self, label: str, p: float, end: float, final: bool) -> Decision:
        return Decision(
            label=label,
            p_female=p,
            speech_seconds=self._speech_frames * self.clock.hop_seconds,
            start=self.clock.start(self._start),
            end=end,
            windows=self._windows,
            final=final,
        )


def no_speech(speech_seconds: float = 0.0) -> Decision:
    """The decision for a recording without (enough) voice."""
    return Decision("no_speech", math.nan, speech_seconds, 0.0, 0.0, 0, final=True)

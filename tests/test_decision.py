"""Utterance-level aggregation: segmentation, provisional/final decisions, hysteresis, timestamps."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from voicegender.decision import DecisionSettings, FrameClock, UtteranceDecider, no_speech, sticky_label
from voicegender.errors import VoicegenderError
from voicegender.events import Decision, State
from voicegender.model import Thresholds

CLOCK = FrameClock(hop_seconds=0.01, frame_seconds=0.025, window_frames=98, hop_frames=25)
TH = Thresholds(0.35, 0.65)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def run(labels: np.ndarray, score, settings: DecisionSettings | None = None, chunk: int = 10):
    """Feed labels in chunks; returns [(frame at which the event came out, event)]."""
    calls: list[int] = []

    def scorer(start: int) -> float:
        calls.append(start)
        return score(start)

    decider = UtteranceDecider(settings or DecisionSettings(), TH, CLOCK, scorer)
    out = []
    for i in range(0, labels.size, chunk):
        out += [(decider.frame, e) for e in decider.push(labels[i : i + chunk])]
    out += [(decider.frame, e) for e in decider.flush()]
    return out, calls


def speech(*spans: tuple[float, float], total: float) -> np.ndarray:
    labels = np.zeros(round(total * 100), dtype=bool)
    for a, b in spans:
        labels[round(a * 100) : round(b * 100)] = True
    return labels


def decisions(events) -> list[Decision]:
    return [e for _, e in events if isinstance(e, Decision)]


def test_one_utterance_provisional_then_final() -> None:
    half = DecisionSettings(min_window_speech=0.5, min_speech_seconds=0.5)
    events, calls = run(speech((1.0, 3.0), total=5.0), lambda w: logit(0.9), half)
    states = [e for _, e in events if isinstance(e, State)]
    assert states == [State.SPEECH, State.LISTENING]
    ds = decisions(events)
    assert all(not d.final for d in ds[:-1]) and ds[-1].final
    final = ds[-1]
    assert final.label == "female" and final.p_female == pytest.approx(0.9)
    assert final.start == pytest.approx(1.0)
    assert final.end == pytest.approx(2.99 + 0.025)  # end of the last speech frame
    assert final.speech_seconds == pytest.approx(2.0)
    # The first window is the first one at least half speech (frames 51-148), the next ones follow
    # every 25 frames up to the last that ends before the utterance does (201-298); the model ran
    # for those alone.
    assert final.windows == len(calls) == 7 and calls == [51, 76, 101, 126, 151, 176, 201]
    # Each provisional decision adds one window; the first needs min_speech_seconds of speech. When
    # the speech ends (end_of_utterance_seconds after it), one more provisional decision has the
    # final's label and p_female at once; the final one follows when the utterance can no longer
    # continue (continue_within_seconds after the speech ended).
    assert [d.windows for d in ds[:-1]] == [*range(1, 8), 7]
    assert ds[0].speech_seconds >= 0.5
    assert ds[-2] == dataclasses.replace(final, final=False)
    frame_of = {d.final: f for f, d in events if isinstance(d, Decision) and d.windows == 7}
    assert frame_of[False] == pytest.approx(300 + 20, abs=10)
    assert frame_of[True] == pytest.approx(300 + 80, abs=10)


def test_one_final_decision_per_utterance_also_without_continuation() -> None:
    for settings in (DecisionSettings(continue_within_seconds=0), DecisionSettings(provisional=False)):
        events, _ = run(speech((1.0, 3.0), (3.5, 4.5), total=6.0), lambda w: logit(0.9), settings)
        finals = [d for d in decisions(events) if d.final]
        assert len(finals) == (2 if settings.continue_within_seconds == 0 else 1)
        if not settings.provisional:
            assert all(d.final for d in decisions(events))
    # With continuation off, the final decision comes as soon as the speech has ended.
    events, _ = run(
        speech((1.0, 3.0), total=5.0), lambda w: logit(0.9), DecisionSettings(continue_within_seconds=0)
    )
    assert next(f for f, e in events if isinstance(e, Decision) and e.final) == pytest.approx(320, abs=10)


def test_input_ending_or_lost_right_after_speech_still_decides() -> None:
    events, _ = run(speech((1.0, 3.0), total=3.3), lambda w: logit(0.1))  # flush() before it is due
    assert [d.label for d in decisions(events) if d.final] == ["male"]
    decider = UtteranceDecider(DecisionSettings(), TH, CLOCK, lambda w: logit(0.1))
    events = decider.push(speech((1.0, 3.0), total=3.3))
    assert not any(isinstance(e, Decision) and e.final for e in events)
    assert [d.label for d in decider.abandon() if isinstance(d, Decision) and d.final] == ["male"]
    assert decider.flush() == []  # decided once only


def test_short_pause_joins_long_pause_splits() -> None:
    joined, _ = run(speech((1.0, 2.0), (2.15, 3.0), total=5.0), lambda w: logit(0.2))
    assert [d.label for d in decisions(joined) if d.final] == ["male"]
    # After a longer pause the LEDs get the label at once (a provisional decision), but speech
    # resuming within continue_within_seconds (0.8 s) continues the utterance: its one final
    # decision pools both parts.
    resumed, _ = run(speech((1.0, 2.0), (2.5, 3.5), total=5.0), lambda w: logit(0.2))
    finals = [d for d in decisions(resumed) if d.final]
    assert [d.start for d in finals] == pytest.approx([1.0])
    assert [d.speech_seconds for d in finals] == pytest.approx([2.0])
    at_first_end = [d for d in decisions(resumed) if not d.final and d.speech_seconds == pytest.approx(1.0)]
    assert at_first_end and finals[0].windows > at_first_end[-1].windows
    split, _ = run(speech((1.0, 2.0), (3.5, 4.5), total=6.0), lambda w: logit(0.2))
    finals = [d for d in decisions(split) if d.final]
    assert [d.start for d in finals] == pytest.approx([1.0, 3.5])
    assert [d.speech_seconds for d in finals] == pytest.approx([1.0, 1.0])


def test_continuation_pools_the_evidence_of_both_parts() -> None:
    # First part says female weakly, second strongly male: the one final decision is the mean.
    scores = {True: logit(0.6), False: logit(0.05)}
    events, calls = run(speech((1.0, 2.5), (3.0, 4.5), total=6.0), lambda start: scores[start * 0.01 < 2.5])
    finals = [d for d in decisions(events) if d.final]
    assert len(finals) == 1 and finals[0].start == pytest.approx(1.0)
    first_part = [d for d in decisions(events) if d.speech_seconds == pytest.approx(1.5)][-1]
    assert first_part.label == "uncertain" and not first_part.final
    mean = np.mean([scores[c * 0.01 < 2.5] for c in calls])
    assert finals[0].windows == len(calls) and finals[0].p_female == pytest.approx(1 / (1 + math.exp(-mean)))


def test_too_little_speech_gives_no_decision() -> None:
    events, calls = run(speech((1.0, 1.2), total=3.0), lambda w: logit(0.9))  # 0.2 s < 0.25 s
    assert decisions(events) == []
    assert [e for _, e in events] == [State.SPEECH, State.LISTENING]
    assert calls == []  # no window was mostly speech: the model never ran


def test_model_runs_only_on_speech_windows() -> None:
    _, calls = run(speech(total=10.0), lambda w: 0.0)
    assert calls == []
    _, calls = run(speech((0.0, 10.0), total=10.0), lambda w: 0.0)
    assert len(calls) == 1 + (1000 - 98) // 25


def test_hysteresis_stops_flicker() -> None:
    # Window log-odds chosen so that the running mean p_female swings 0.67, 0.62, 0.67, 0.62 ...
    # around the female threshold (0.65) from one provisional decision to the next.
    targets = [0.67 if k % 2 == 0 else 0.62 for k in range(40)]
    sums = [(k + 1) * logit(p) for k, p in enumerate(targets)]
    scores = iter(np.diff([0.0, *sums]))
    events, _ = run(speech((0.0, 5.0), total=6.0), lambda w: next(scores))
    provisional = [d for d in decisions(events) if not d.final]
    assert [round(d.p_female, 2) for d in provisional[:4]] == [0.67, 0.62, 0.67, 0.62]
    plain = [TH.label(d.p_female) for d in provisional]
    shown = [d.label for d in provisional]
    assert plain[:4] == ["female", "uncertain", "female", "uncertain"]  # plain thresholds flicker ...
    assert set(shown) == {"female"}  # ... the shown label holds (0.62 is within the 0.05 hysteresis)
    final = decisions(events)[-1]
    assert final.final and final.label == TH.label(final.p_female)  # the final one ignores the history


def test_sticky_label() -> None:
    assert sticky_label(0.62, None, TH, 0.05) == "uncertain"
    assert sticky_label(0.62, "female", TH, 0.05) == "female"
    assert sticky_label(0.59, "female", TH, 0.05) == "uncertain"
    assert sticky_label(0.68, "uncertain", TH, 0.05) == "uncertain"
    assert sticky_label(0.71, "uncertain", TH, 0.05) == "female"
    assert sticky_label(0.38, "male", TH, 0.05) == "male"
    assert sticky_label(0.41, "male", TH, 0.05) == "uncertain"
    assert sticky_label(0.29, "uncertain", TH, 0.05) == "male"
    assert sticky_label(0.9, "male", TH, 0.05) == "female"


def test_provisional_off() -> None:
    events, _ = run(speech((1.0, 3.0), total=5.0), lambda w: logit(0.1), DecisionSettings(provisional=False))
    assert [(d.label, d.final) for d in decisions(events)] == [("male", True)]


def test_max_utterance_splits_long_speech() -> None:
    settings = DecisionSettings(max_utterance_seconds=4.0, provisional=False)
    events, _ = run(speech((0.0, 10.0), total=11.0), lambda w: 0.0, settings)
    finals = decisions(events)
    assert len(finals) == 3
    assert [round(d.start, 2) for d in finals] == [0.0, 4.0, 8.0]
    assert all(d.speech_seconds <= 4.0 + 1e-9 for d in finals)


def test_flush_decides_the_utterance_in_progress() -> None:
    events, _ = run(speech((1.0, 3.0), total=3.0), lambda w: logit(0.1))
    assert decisions(events)[-1].final and decisions(events)[-1].label == "male"


def test_abandon_drops_the_utterance() -> None:
    decider = UtteranceDecider(DecisionSettings(), TH, CLOCK, lambda w: 0.0)
    decider.push(np.ones(150, dtype=bool))
    assert decider.abandon() == [State.LISTENING]
    assert decider.flush() == []


def test_chunking_does_not_matter() -> None:
    labels = speech((0.5, 2.0), (2.1, 4.0), (5.0, 7.0), total=8.0)
    ref, _ = run(labels, lambda w: math.sin(w), chunk=len(labels))
    for chunk in (1, 7, 100):
        got, _ = run(labels, lambda w: math.sin(w), chunk=chunk)
        assert [e for _, e in got] == [e for _, e in ref]


def test_origin_shifts_timestamps() -> None:
    clock = FrameClock(0.01, 0.025, 98, 25, origin=100.0)
    decider = UtteranceDecider(DecisionSettings(), TH, clock, lambda w: 0.0)
    events = decider.push(speech((1.0, 3.0), total=4.0))
    final = next(e for e in events if isinstance(e, Decision) and e.final)
    assert final.start == pytest.approx(101.0)


def test_thresholds_override() -> None:
    model = Thresholds(0.3, 0.7)
    assert DecisionSettings().thresholds(model) == model
    assert DecisionSettings(male_below=0.4).thresholds(model) == Thresholds(0.4, 0.7)
    with pytest.raises(VoicegenderError, match=r"\[decision\]"):
        DecisionSettings(male_below=0.8).thresholds(model)  # above the model's female threshold


@pytest.mark.parametrize(
    "kwargs",
    [
        {"male_below": 1.5},
        {"male_below": 0.7, "female_above": 0.6},
        {"hysteresis": 0.6},
        {"min_window_speech": 0.0},
        {"max_utterance_seconds": 0.5},
    ],
)
def test_bad_settings(kwargs: dict) -> None:
    with pytest.raises(VoicegenderError, match=r"^\[decision\]"):
        DecisionSettings(**kwargs)


def test_no_speech_decision() -> None:
    d = no_speech(0.3)
    assert d.label == "no_speech" and math.isnan(d.p_female) and d.speech_seconds == 0.3 and d.windows == 0

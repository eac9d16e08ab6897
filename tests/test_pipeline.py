"""The streaming pipeline (resample -> front end -> VAD -> model -> decider) with a fake model,
and end to end with the shipped model once it exists."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from daemon_fakes import FakeModel

from voicegender.decision import DecisionSettings
from voicegender.events import Decision, State
from voicegender.frontend import Frontend
from voicegender.model import sigmoid
from voicegender.pipeline import StreamProcessor, classify_audio
from voicegender.resample import resample
from voicegender.vad import VadSettings, detect_speech
from voicegender.wavio import read_wav

SR = 16000
REPO = Path(__file__).resolve().parents[1]
SHIPPED_MODEL = REPO / "models" / "voicegender.tflite"


@pytest.fixture(scope="module")
def clips(fixtures_dir) -> dict[str, np.ndarray]:
    out = {}
    for name in ("male_1320", "female_3575", "demo_male_then_female"):
        audio, rate = read_wav(fixtures_dir / f"{name}.wav")
        assert rate == SR
        out[name] = audio
    return out


def stream(processor: StreamProcessor, audio: np.ndarray, chunk: int) -> list[tuple[float, object]]:
    """Push ``audio`` in chunks; each event with the stream position (seconds) when it came out."""
    out = []
    for i in range(0, audio.size, chunk):
        out += [(processor.position, e) for e in processor.push(audio[i : i + chunk])]
    out += [(processor.position, e) for e in processor.flush()]
    return out


def scripted_timeline(clips) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Silence, male, silence, white noise, female, a 440 Hz tone, silence: (audio, [(what, start, end)])."""
    rng = np.random.default_rng(7)
    parts = [
        ("silence", np.zeros(SR)),
        ("male", clips["male_1320"]),
        ("silence", np.zeros(SR)),
        ("noise", 0.05 * rng.standard_normal(2 * SR)),
        ("female", clips["female_3575"]),
        ("tone", 0.2 * np.sin(2 * np.pi * 440 * np.arange(2 * SR) / SR)),
        ("silence", np.zeros(SR)),
    ]
    timeline, t = [], 0.0
    for what, x in parts:
        timeline.append((what, t, t + x.size / SR))
        t += x.size / SR
    return np.concatenate([x for _, x in parts]).astype(np.float32), timeline


def test_decisions_follow_the_timeline(clips) -> None:
    audio, timeline = scripted_timeline(clips)
    proc = StreamProcessor(FakeModel(), VadSettings(), DecisionSettings(), SR)
    events = stream(proc, audio, 1600)
    finals = [(pos, e) for pos, e in events if isinstance(e, Decision) and e.final]
    assert [e.label for _, e in finals] == ["male", "female"]
    spans = {what: (a, b) for what, a, b in timeline if what in ("male", "female")}
    for (pos, d), what in zip(finals, ("male", "female"), strict=True):
        a, b = spans[what]
        # The utterance lies within the clip (speech starts a little into each recording; the
        # VAD's hangover and the last frame's length may reach 0.15 s past its end) ...
        assert a <= d.start <= a + 0.4 and b - 0.6 <= d.end <= b + 0.15
        assert 3.5 <= d.speech_seconds <= 5.0
        # ... its label shows at most 0.5 s (+ one 0.1 s chunk) after its end, in a provisional
        # decision equal to the final one, which follows once the utterance can no longer continue
        # (continue_within_seconds, 0.8 s after the speech, + the VAD's 0.1 s label delay + at most one
        # 0.1 s chunk, counted from the last speech frame's hop: its end is 15 ms later).
        closing = [
            (p, e) for p, e in events if isinstance(e, Decision) and e == dataclasses.replace(d, final=False)
        ]
        assert len(closing) == 1 and d.end < closing[0][0] <= d.end + 0.6
        assert d.end + 0.8 <= pos <= d.end + 1.0 + 0.015
    # Speech/listening states alternate and bracket each utterance; nothing fires on noise or tone.
    states = [e for _, e in events if isinstance(e, State)]
    assert states == [State.SPEECH, State.LISTENING] * 2


def test_first_decision_within_a_second_of_speech(clips) -> None:
    audio, _ = scripted_timeline(clips)
    proc = StreamProcessor(FakeModel(), VadSettings(), DecisionSettings(), SR)
    events = stream(proc, audio, 160)  # 10 ms chunks, so the chunk size does not hide the latency
    starts = [(pos, e) for pos, e in events if e is State.SPEECH]
    firsts = []
    for pos, e in events:
        if isinstance(e, Decision) and (not firsts or firsts[-1][1].start != e.start):
            firsts.append((pos, e))
    assert len(starts) == len(firsts) == 2
    for pos, d in firsts:
        assert pos - d.start <= 1.0, f"first decision {pos - d.start:.2f} s after speech onset"


@pytest.mark.parametrize("chunk", [37, 1600, 16000])
def test_chunking_does_not_change_results(clips, chunk: int) -> None:
    audio = clips["demo_male_then_female"]
    assert np.abs(Frontend().mfcc(audio)[:, [2, 4]]).max() < 1024  # the premise of the bound below
    ref = [
        e for _, e in stream(StreamProcessor(FakeModel(), VadSettings(), DecisionSettings(), SR), audio, 160)
    ]
    got = [
        e
        for _, e in stream(StreamProcessor(FakeModel(), VadSettings(), DecisionSettings(), SR), audio, chunk)
    ]
    # Same states and decisions at the same times. p_female only up to the front end's bound (features
    # within one float32 spacing, < 6.2e-5 for the |c2|, |c4| < 1024 the fake model averages): the
    # fake model's log-odds then move by < 3.1e-5 and p_female by < 7.8e-6 (sigmoid' <= 1/4).
    assert [type(e) for e in got] == [type(e) for e in ref]
    for g, r in zip(got, ref, strict=True):
        if isinstance(r, Decision):
            assert g == dataclasses.replace(r, p_female=g.p_female)
            assert g.p_female == pytest.approx(r.p_female, rel=0, abs=1e-5)
        else:
            assert g == r


def test_classify_pools_exactly_the_daemons_decisions(clips) -> None:
    """classify = the daemon's final decisions for the same audio, their log-odds pooled."""
    for name in ("male_1320", "female_3575", "demo_male_then_female"):
        audio = clips[name]
        events = stream(StreamProcessor(FakeModel(), VadSettings(), DecisionSettings(), SR), audio, 1600)
        finals = [e for _, e in events if isinstance(e, Decision) and e.final]
        d = classify_audio(audio, SR, FakeModel())
        assert d.final and d.windows == sum(f.windows for f in finals)
        pooled = sum(f.windows * math.log(f.p_female / (1 - f.p_female)) for f in finals) / d.windows
        assert d.p_female == pytest.approx(float(sigmoid(pooled)), rel=1e-6)
        assert d.speech_seconds == pytest.approx(sum(f.speech_seconds for f in finals))
        assert (d.start, d.end) == (finals[0].start, finals[-1].end)
        if len(finals) == 1:  # one utterance: the very decision the daemon makes
            assert d == dataclasses.replace(finals[0], p_female=d.p_female)
    assert len(finals) == 2  # the demo: a man, then a woman
    assert classify_audio(clips["male_1320"], SR, FakeModel()).label == "male"
    assert classify_audio(clips["female_3575"], SR, FakeModel()).label == "female"


def test_too_little_speech_is_uncertain_not_no_speech(clips) -> None:
    audio = clips["male_1320"]
    labels = detect_speech(audio)
    first = int(np.argmax(labels))
    word = audio[first * 160 : (first + 16) * 160]  # 0.16 s of speech, less than min_speech_seconds
    d = classify_audio(np.concatenate([np.zeros(SR), word, np.zeros(SR)]).astype(np.float32), SR, FakeModel())
    assert d.label == "uncertain" and np.isnan(d.p_female) and d.windows == 0
    assert 0 < d.speech_seconds < DecisionSettings().min_speech_seconds


@pytest.mark.parametrize("rate", [22050, 44100, 48000])
def test_other_sample_rates_are_resampled(clips, rate: int) -> None:
    for name, label in (("male_1320", "male"), ("female_3575", "female")):
        ref = classify_audio(clips[name], SR, FakeModel())
        d = classify_audio(resample(clips[name], SR, rate), rate, FakeModel())
        assert d.label == label
        assert d.speech_seconds == pytest.approx(ref.speech_seconds, abs=0.15)
        assert d.start == pytest.approx(ref.start, abs=0.05)  # timestamps stay in input seconds


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.zeros(3 * SR),
        lambda: 0.1 * np.random.default_rng(3).standard_normal(3 * SR),
        lambda: 0.3 * np.sin(2 * np.pi * 1000 * np.arange(3 * SR) / SR),
        lambda: np.zeros(100),  # shorter than one frame
    ],
)
def test_no_speech(make) -> None:
    model = FakeModel()
    d = classify_audio(make().astype(np.float32), SR, model)
    assert d.label == "no_speech" and np.isnan(d.p_female) and d.windows == 0
    assert model.calls == 0  # the model never ran


def test_memory_is_bounded(clips) -> None:
    proc = StreamProcessor(FakeModel(), VadSettings(), DecisionSettings(), SR)
    sizes = []
    for _ in range(6):  # about 70 s
        for i in range(0, clips["demo_male_then_female"].size, 1600):
            proc.push(clips["demo_male_then_female"][i : i + 1600])
            sizes.append(len(proc._mfcc))
    # One model window plus the VAD's delay plus one chunk of frames, whatever the stream length.
    assert max(sizes) <= 98 + proc.vad.delay_frames + 10 + 5


def test_abandon_ends_the_utterance_without_a_decision(clips) -> None:
    proc = StreamProcessor(FakeModel(), VadSettings(), DecisionSettings(provisional=False), SR)
    proc.push(clips["male_1320"][: 3 * SR])
    assert proc.abandon() == [State.LISTENING]
    # What is still in the pipeline (the VAD's delay) is too short to be decided on its own.
    assert not any(isinstance(e, Decision) for e in proc.flush())


def test_origin_offsets_timestamps(clips) -> None:
    proc = StreamProcessor(FakeModel(), VadSettings(), DecisionSettings(), SR, origin=60.0)
    events = proc.push(clips["male_1320"]) + proc.flush()
    final = next(e for e in events if isinstance(e, Decision) and e.final)
    assert 60.0 < final.start < 60.5 and proc.position == pytest.approx(65.0, abs=0.01)


# -- with the shipped model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped_model():
    if not SHIPPED_MODEL.exists():
        pytest.fail(f"shipped model {SHIPPED_MODEL} is missing (restore models/ from git)")
    from voicegender.model import load_model

    return load_model(SHIPPED_MODEL)


def test_shipped_model_on_the_fixtures(shipped_model, clips) -> None:
    assert classify_audio(clips["male_1320"], SR, shipped_model).label == "male"
    assert classify_audio(clips["female_3575"], SR, shipped_model).label == "female"


def test_shipped_model_on_the_timeline(shipped_model, clips) -> None:
    audio, _ = scripted_timeline(clips)
    proc = StreamProcessor(shipped_model, VadSettings(), DecisionSettings(), SR)
    events = stream(proc, audio, 1600)
    finals = [e for _, e in events if isinstance(e, Decision) and e.final]
    assert [d.label for d in finals] == ["male", "female"]

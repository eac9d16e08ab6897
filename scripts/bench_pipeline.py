#!/usr/bin/env python3
"""Time the daemon's per-chunk work: front end, VAD, and the whole StreamProcessor, per second of audio.

Audio: the demo fixture (male 5 s, silence 1.5 s, female 5 s) tiled to ``--seconds``, pushed in
100 ms chunks as the daemon does. The reference is ``StreamingFrontend`` alone, timed in the same
rounds (interleaved, so drifts in machine load hit every stage alike): the VAD and the full
pipeline are reported as ratios to it. The full pipeline uses the shipped model if it exists
(or ``--model``); otherwise a stand-in with the same interface whose cost is one matrix product.
Also prints the real-time factor (processing time / audio time; the daemon needs well under 1)
and the decision latency on the demo: stream time of the first decision after each speech onset.

    .venv/bin/python scripts/bench_pipeline.py [--seconds 60] [--rounds 5] [--model PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from voicegender.decision import DecisionSettings
from voicegender.events import Decision, State
from voicegender.frontend import FrontendSettings, StreamingFrontend
from voicegender.model import ModelMetadata, load_model
from voicegender.pipeline import StreamProcessor
from voicegender.vad import VadSettings, VoiceActivityDetector
from voicegender.wavio import read_wav

REPO = Path(__file__).resolve().parents[1]
CHUNK = 1600


class StandIn:
    """Same interface as ``model.Model``; one (98*30 x 1) product per window."""

    def __init__(self) -> None:
        fe = FrontendSettings()
        self.metadata = ModelMetadata(fe, 98, 25, (0.0,) * 30, (1.0,) * 30)
        self._w = np.random.default_rng(0).standard_normal(98 * 30).astype(np.float32) * 1e-3

    def logits(self, windows: np.ndarray) -> np.ndarray:
        return windows.reshape(len(windows), -1) @ self._w


def feed(stage, audio: np.ndarray) -> float:
    start = time.perf_counter()
    for i in range(0, audio.size, CHUNK):
        stage(audio[i : i + CHUNK])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "voicegender.tflite")
    args = parser.parse_args()

    demo, rate = read_wav(REPO / "tests" / "fixtures" / "demo_male_then_female.wav")
    audio = np.tile(demo, int(np.ceil(args.seconds * rate / demo.size)))[: int(args.seconds * rate)]
    model = load_model(args.model) if args.model.exists() else StandIn()
    model_name = f"model {args.model.name}" if args.model.exists() else "stand-in model (no .tflite yet)"

    stages = {
        "front end (reference)": lambda: StreamingFrontend().push,
        "VAD": lambda: VoiceActivityDetector().push,
        f"pipeline, {model_name}": lambda: (
            StreamProcessor(model, VadSettings(), DecisionSettings(), rate).push
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in stages}
    feed(stages["VAD"](), audio[: 2 * rate])  # warm-up (imports, caches)
    for r in range(args.rounds):
        names = list(stages)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(feed(stages[name](), audio))
    seconds = audio.size / rate
    ref = statistics.median(times["front end (reference)"])
    print(f"{seconds:.0f} s of audio in {CHUNK / rate * 1000:.0f} ms chunks, median of {args.rounds} rounds")
    print(f"{'stage':45s} {'ms per s audio':>15s} {'x front end':>12s} {'real-time factor':>17s}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:45s} {1000 * med / seconds:15.2f} {med / ref:12.2f} {med / seconds:17.4f}")

    # Latency on the demo (speech onsets at ~0.2 s and ~6.7 s), 10 ms chunks so chunking adds nothing.
    proc = StreamProcessor(model, VadSettings(), DecisionSettings(), rate)
    onset = None
    for i in range(0, demo.size, 160):
        for event in proc.push(demo[i : i + 160]):
            if event is State.SPEECH:
                onset = None
            if isinstance(event, Decision) and onset is None:
                onset = event.start
                print(
                    f"utterance from {event.start:.2f} s: first decision ({event.label}, "
                    f"p_female {event.p_female:.2f}) at stream time {proc.position:.2f} s, "
                    f"{proc.position - event.start:.2f} s after the detected onset"
                )
            if isinstance(event, Decision) and event.final:
                print(
                    f"utterance to {event.end:.2f} s: final decision ({event.label}, p_female "
                    f"{event.p_female:.2f}) at stream time {proc.position:.2f} s, "
                    f"{proc.position - event.end:.2f} s after the detected end (which includes the VAD's "
                    f"{VadSettings().hangover_seconds:g} s hangover)"
                )


if __name__ == "__main__":
    main()

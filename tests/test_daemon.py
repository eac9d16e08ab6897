"""The daemon loop: file runs with mock LEDs, microphone loss and recovery, overflow, stop and reload,
and real signals (SIGTERM, SIGINT, SIGHUP) to a daemon in a subprocess."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from daemon_fakes import FakeModel, ScriptedSource

from voicegender.config import Config, with_overrides
from voicegender.daemon import Daemon, NullOutput
from voicegender.errors import VoicegenderError
from voicegender.events import Decision, State
from voicegender.runner import OUTPUT_SLOTS, build_daemon
from voicegender.wavio import read_wav, write_wav

SR = 16000
TESTS = Path(__file__).resolve().parent
MALE_PIN, FEMALE_PIN, STATUS_PIN = 17, 27, 22


class Recorder:
    """An output that remembers everything it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object, str]] = []
        self.closed = False

    def on_state(self, state: State, detail: str = "") -> None:
        self.events.append(("state", state, detail))

    def on_decision(self, decision: Decision) -> None:
        self.events.append(("decision", decision, ""))

    def close(self) -> None:
        self.closed = True

    def states(self) -> list[State]:
        return [e for kind, e, _ in self.events if kind == "state"]

    def finals(self) -> list[Decision]:
        return [e for kind, e, _ in self.events if kind == "decision" and e.final]


class FakeNotifier(NullOutput):
    """Records the systemd notify calls the daemon makes (and, as an output, shows nothing)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def ready(self, status: str = "") -> bool:
        self.calls.append("ready")
        return True

    def stopping(self) -> bool:
        self.calls.append("stopping")
        return True

    def reloading(self) -> bool:
        self.calls.append("reloading")
        return True

    def watchdog(self) -> bool:
        self.calls.append("watchdog")
        return True

    def set_note(self, key: str, text: str) -> None:
        self.calls.append(f"note {key}: {text}")


class FakeClock:
    """Monotonic time that only moves when the daemon sleeps (so backoff waits take no real time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="module")
def clips(fixtures_dir) -> dict[str, np.ndarray]:
    return {name: read_wav(fixtures_dir / f"{name}.wav")[0] for name in ("male_1320", "female_3575")}


def chunks(audio: np.ndarray, size: int = 1600) -> list[np.ndarray]:
    return [audio[i : i + size] for i in range(0, audio.size, size)]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), dtype=np.float32)


def mic_config(**decision) -> Config:
    config = with_overrides(Config(), {"audio": {"input": "mic"}, "decision": decision})
    return config


# -- a file run with mock GPIO ----------------------------------------------------------------------------


def rising_edges(factory, pin: int) -> list[float]:
    states = factory.pin(pin).states
    return [b.timestamp for a, b in itertools.pairwise(states) if not a.state and b.state]


def test_file_run_lights_the_leds_in_order(tmp_path, clips, mock_pins, capsys) -> None:
    wav = tmp_path / "script.wav"
    write_wav(wav, np.concatenate((silence(0.5), clips["male_1320"], silence(1.5), clips["female_3575"])), SR)
    config = with_overrides(
        Config(),
        {
            "audio": {"input": str(wav), "realtime": False},
            "decision": {"provisional": False},
            "decision_log": {"path": str(tmp_path / "log" / "decisions.jsonl")},
        },
    )
    recorder = Recorder()
    notifier = FakeNotifier()
    daemon = build_daemon(config, FakeModel(), json_stdout=True, extra_outputs=[recorder], notifier=notifier)
    assert daemon.run() == 0

    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["label"] for d in printed] == ["male", "female"]
    assert 0.5 <= printed[0]["start"] < 0.9 and printed[0]["end"] <= 5.6
    assert 7.0 <= printed[1]["start"] < 7.4 and printed[1]["end"] <= 12.15
    assert all({"label", "p_female", "speech_seconds", "start", "end"} <= d.keys() for d in printed)
    logged = [json.loads(line) for line in (tmp_path / "log" / "decisions.jsonl").read_text().splitlines()]
    assert [d["label"] for d in logged] == ["male", "female"]
    # LEDs: all on for the lamp test at start; then the male LED lit once and after it the female
    # LED once; all dark after the stop.
    male, female = rising_edges(mock_pins, MALE_PIN), rising_edges(mock_pins, FEMALE_PIN)
    assert len(male) == 2 and len(female) == 2 and male[1] < female[1]
    assert [mock_pins.pin(p).state for p in (MALE_PIN, FEMALE_PIN, STATUS_PIN)] == [0, 0, 0]
    assert recorder.states()[0] is State.STARTING and recorder.states()[-1] is State.STOPPED
    assert recorder.closed and notifier.calls[0] == "watchdog" and "ready" in notifier.calls
    assert notifier.calls[-1] == "stopping"


def test_missing_file_is_fatal(tmp_path) -> None:
    config = with_overrides(Config(), {"audio": {"input": str(tmp_path / "absent.wav")}})
    daemon = build_daemon(
        with_overrides(config, {"leds": {"enabled": False}, "decision_log": {"enabled": False}}), FakeModel()
    )
    with pytest.raises(VoicegenderError, match=r"absent\.wav"):
        daemon.run()


# -- microphone loss and recovery -------------------------------------------------------------------------


def test_microphone_absent_then_lost_then_back(clips) -> None:
    sources = [
        ScriptedSource([], fail_opens=1),  # not plugged in at start ...
        ScriptedSource([], fail_opens=1),  # ... nor at the first retry
        ScriptedSource([*chunks(clips["male_1320"]), *chunks(silence(1.0)), "lost"]),
        ScriptedSource([*chunks(silence(0.5)), *chunks(clips["female_3575"]), *chunks(silence(1.0))]),
    ]
    made: list[ScriptedSource] = []

    def make_source(config):
        made.append(sources[len(made)])
        return made[-1]

    recorder, notifier, clock = Recorder(), FakeNotifier(), FakeClock()
    daemon = Daemon(mic_config(), FakeModel(), make_source, fixed_outputs=[recorder], notifier=notifier,
                    sleep=clock.sleep, clock=clock)  # fmt: skip
    assert daemon.run() == 0
    assert len(made) == 4 and all(s.opens == 1 for s in made)

    errors = [detail for kind, e, detail in recorder.events if e is State.ERROR]
    assert len(errors) == 3
    assert "not found; retrying in 1 s" in errors[0] and "retrying in 2 s" in errors[1]
    assert "lost: unplugged; retrying in 1 s" in errors[2]  # the delay starts again after a success
    # Waits of 1 s and 2 s while absent, 1 s after the loss; in small steps (signals stay responsive).
    assert sum(clock.sleeps) == pytest.approx(4.0) and max(clock.sleeps) <= 0.1 + 1e-9
    # READY is sent at the first error (no start timeout at boot) and only once.
    assert notifier.calls.count("ready") == 1 and notifier.calls.index("ready") < 5
    assert notifier.calls.count("watchdog") > 100  # pinged from the loop, also while waiting

    finals = recorder.finals()
    assert [d.label for d in finals] == ["male", "female"]
    lost_at = (len(chunks(clips["male_1320"])) + 10) * 0.1
    # The female clip's timestamps count the second the microphone was away.
    assert lost_at + 1.0 + 0.5 <= finals[1].start <= lost_at + 1.0 + 0.5 + 0.4
    states = recorder.states()
    assert states[:3] == [State.STARTING, State.ERROR, State.ERROR]
    assert states[3] is State.LISTENING and states[-1] is State.STOPPED


def test_loss_mid_utterance_drops_it(clips) -> None:
    sources = [
        ScriptedSource([*chunks(clips["male_1320"][: 3 * SR]), "lost"]),
        ScriptedSource(chunks(silence(1.0))),
    ]
    recorder, clock = Recorder(), FakeClock()
    config = mic_config(provisional=False)
    daemon = Daemon(config, FakeModel(), lambda c: sources.pop(0), fixed_outputs=[recorder],
                    sleep=clock.sleep, clock=clock)  # fmt: skip
    daemon.run()
    assert recorder.finals() == []
    assert recorder.states() == [State.STARTING, State.LISTENING, State.SPEECH, State.LISTENING, State.ERROR,
                                 State.LISTENING, State.STOPPED]  # fmt: skip


def test_overflows_are_logged(clips, caplog) -> None:
    source = ScriptedSource([*chunks(silence(0.3)), "overflow 3", *chunks(silence(0.3)), "overflow 1"])
    daemon = Daemon(mic_config(), FakeModel(), lambda c: source)
    with caplog.at_level(logging.WARNING, logger="voicegender"):
        daemon.run()
    messages = [r.getMessage() for r in caplog.records if "overflow" in r.getMessage()]
    assert len(messages) == 2
    assert "3 audio chunk(s) lost to overflow (3 in total)" in messages[0]
    assert "1 audio chunk(s) lost to overflow (4 in total)" in messages[1]


# -- stop and reload --------------------------------------------------------------------------------------


class EndlessSource(ScriptedSource):
    def read(self, timeout: float):
        return np.zeros(1600, dtype=np.float32)


def test_stop_request_ends_the_loop_and_closes_outputs() -> None:
    recorder, notifier = Recorder(), FakeNotifier()
    seen = []

    def on_chunk(processor) -> None:
        seen.append(processor.position)
        if len(seen) == 5:
            daemon.request_stop()

    daemon = Daemon(mic_config(), FakeModel(), lambda c: EndlessSource([]), fixed_outputs=[recorder],
                    notifier=notifier, on_chunk=on_chunk)  # fmt: skip
    assert daemon.run() == 0
    assert len(seen) == 5 and recorder.closed and recorder.states()[-1] is State.STOPPED
    assert notifier.calls[-1] == "stopping"


def test_reload_applies_thresholds_and_rebuilds_changed_outputs(tmp_path, caplog) -> None:
    base = with_overrides(
        mic_config(), {"leds": {"enabled": False}, "decision_log": {"path": str(tmp_path / "a.jsonl")}}
    )
    new_log = with_overrides(base, {"decision_log": {"path": str(tmp_path / "b.jsonl")}})
    new_thresholds = with_overrides(new_log, {"decision": {"female_above": 0.8}})
    configs = [
        new_log,
        new_thresholds,
        VoicegenderError("config x.toml: unknown key [leds] pinn (allowed: ...)"),
    ]

    def reload_config() -> Config:
        item = configs.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    notifier = FakeNotifier()
    daemon = Daemon(base, FakeModel(), lambda c: EndlessSource([]), slots=OUTPUT_SLOTS, notifier=notifier,
                    reload_config=reload_config)  # fmt: skip
    leds = [daemon.built["leds"]]
    ticks = []

    def on_chunk(processor) -> None:
        ticks.append(1)
        if len(ticks) in (3, 6, 9):
            leds.append(daemon.built["leds"])
            daemon.request_reload()
        if len(ticks) == 12:
            daemon.request_stop()

    daemon.on_chunk = on_chunk
    with caplog.at_level(logging.INFO, logger="voicegender"):
        daemon.run()
    text = caplog.text
    assert "configuration reloaded (rebuilt decision_log)" in text
    assert "configuration reloaded (rebuilt leds)" in text  # the LEDs' brightness uses the thresholds
    assert "reload failed, keeping the running configuration: config x.toml: unknown key" in text
    assert leds[0] is leds[1] is leds[2] and leds[3] is not leds[2]
    assert daemon.thresholds.female_above == 0.8
    assert daemon.processor is not None and daemon.processor.decider.thresholds.female_above == 0.8
    assert daemon.config.decision_log.path == str(tmp_path / "b.jsonl") and (tmp_path / "b.jsonl").exists()
    assert notifier.calls.count("reloading") == 3 and notifier.calls.count("ready") == 4


def test_reload_keeps_settings_that_need_a_restart(caplog) -> None:
    base = with_overrides(mic_config(), {"leds": {"enabled": False}, "decision_log": {"enabled": False}})
    new = dataclasses.replace(base, vad=dataclasses.replace(base.vad, snr_db=12.0))
    daemon = Daemon(base, FakeModel(), lambda c: EndlessSource([]), reload_config=lambda: new)
    with caplog.at_level(logging.WARNING, logger="voicegender"):
        daemon.reload()
    assert "[vad] changed; that takes effect at the next restart" in caplog.text
    assert daemon.config.vad == base.vad


# -- real signals -----------------------------------------------------------------------------------------

RUNNER = """
import sys
sys.path.insert(0, {tests!r})
from daemon_fakes import FakeModel
import voicegender.runner
voicegender.runner.open_model = lambda config: FakeModel()  # the shipped model may not exist yet
from voicegender.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Proc:
    """A `voicegender run --input -` subprocess with line readers on stdout and stderr."""

    def __init__(self, tmp_path: Path, config: Path) -> None:
        script = tmp_path / "run_daemon.py"
        script.write_text(RUNNER.format(tests=str(TESTS)))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("NOTIFY_SOCKET", None)
        args = ["run", "--config", str(config), "--input", "-", "--gpio", "mock", "--json"]
        pipe = subprocess.PIPE
        self.p = subprocess.Popen(
            [sys.executable, str(script), *args], stdin=pipe, stdout=pipe, stderr=pipe, env=env
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._pump, args=(self.p.stdout, self.out.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.p.stderr, self.err.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put) -> None:
        for line in iter(stream.readline, b""):
            put(line.decode())

    def feed(self, audio: np.ndarray) -> None:
        self.p.stdin.write((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
        self.p.stdin.flush()

    def decision(self, timeout: float = 20.0) -> dict:
        return json.loads(self.out.get(timeout=timeout))

    def wait_for_stderr(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.err):
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in stderr: {''.join(self.err)}")

    def stop(self, sig: int) -> tuple[int, float]:
        t0 = time.monotonic()
        self.p.send_signal(sig)
        rc = self.p.wait(timeout=10)
        return rc, time.monotonic() - t0


def _config(path: Path, log: Path, extra: str = "") -> Path:
    path.write_text(f'[decision]\nprovisional = false\n[decision_log]\npath = "{log}"\n{extra}')
    return path


@pytest.mark.slow
def test_sigterm_and_sighup(tmp_path, clips) -> None:
    config = _config(tmp_path / "config.toml", tmp_path / "decisions.jsonl")
    proc = Proc(tmp_path, config)
    try:
        proc.feed(np.concatenate((silence(0.5), clips["male_1320"], silence(1.0))))
        assert proc.decision()["label"] == "male"
        # SIGHUP with a changed file: applied. With a broken file: logged, the old config kept.
        _config(config, tmp_path / "other.jsonl")
        proc.p.send_signal(signal.SIGHUP)
        proc.wait_for_stderr("configuration reloaded (rebuilt decision_log)")
        config.write_text("[leds]\npinn = 3\n")
        proc.p.send_signal(signal.SIGHUP)
        proc.wait_for_stderr("reload failed, keeping the running configuration")
        assert any("unknown key [leds] pinn" in line for line in proc.err)
        proc.feed(np.concatenate((clips["female_3575"], silence(1.0))))
        assert proc.decision()["label"] == "female"
        rc, took = proc.stop(signal.SIGTERM)
    finally:
        proc.p.kill()
    assert rc == 0 and took < 1.0, (rc, took, proc.err)
    assert any("state stopped" in line for line in proc.err)
    assert not any("Traceback" in line for line in proc.err)
    # Each log got its decision, flushed before the exit.
    assert [json.loads(x)["label"] for x in (tmp_path / "decisions.jsonl").read_text().splitlines()] == [
        "male"
    ]
    assert [json.loads(x)["label"] for x in (tmp_path / "other.jsonl").read_text().splitlines()] == ["female"]


@pytest.mark.slow
def test_sigint_stops_cleanly(tmp_path) -> None:
    proc = Proc(tmp_path, _config(tmp_path / "config.toml", tmp_path / "decisions.jsonl"))
    try:
        proc.feed(silence(0.5))
        proc.wait_for_stderr("state listening")
        rc, took = proc.stop(signal.SIGINT)
    finally:
        proc.p.kill()
    assert rc == 0 and took < 1.0
    assert not any("Traceback" in line for line in proc.err)

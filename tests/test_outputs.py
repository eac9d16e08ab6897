"""stdout JSON output and the failure-isolating fan-out."""

from __future__ import annotations

import io
import json
import logging
import math

from voicegender.events import Decision, State
from voicegender.outputs import MultiOutput, StdoutJsonOutput

FINAL = Decision("female", 0.912345, 1.5, 3.0, 4.5, 5)
PROVISIONAL = Decision("male", 0.2, 0.75, 0.0, 0.75, 2, final=False)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_state(self, state: State, detail: str = "") -> None:
        self.events.append(("state", state, detail))

    def on_decision(self, decision: Decision) -> None:
        self.events.append(("decision", decision.label))

    def close(self) -> None:
        self.events.append(("close",))


class Broken:
    def on_state(self, state: State, detail: str = "") -> None:
        raise OSError("disk full")

    on_decision = on_state

    def close(self) -> None:
        raise RuntimeError("close failed")


def test_stdout_json_prints_final_decisions(capsys):
    out = StdoutJsonOutput()
    out.on_state(State.LISTENING)
    out.on_decision(PROVISIONAL)
    out.on_decision(FINAL)
    out.close()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {
        "label": "female",
        "p_female": 0.9123,
        "speech_seconds": 1.5,
        "start": 3.0,
        "end": 4.5,
        "windows": 5,
        "final": True,
    }


def test_stdout_json_no_speech_has_null_p_female():
    stream = io.StringIO()
    StdoutJsonOutput(stream).on_decision(Decision("no_speech", math.nan, 0.0, 0.0, 0.0, 0))
    assert "NaN" not in stream.getvalue()
    assert json.loads(stream.getvalue())["p_female"] is None


def test_stdout_json_provisional_on_request():
    stream = io.StringIO()
    out = StdoutJsonOutput(stream, provisional=True)
    out.on_decision(PROVISIONAL)
    out.on_decision(FINAL)
    assert [json.loads(line)["final"] for line in stream.getvalue().splitlines()] == [False, True]


def test_fan_out_isolates_a_failing_output(caplog):
    first, second = Recorder(), Recorder()
    multi = MultiOutput([first, Broken(), second])
    with caplog.at_level(logging.WARNING, logger="voicegender.outputs"):
        multi.on_state(State.SPEECH, "x")
        multi.on_decision(FINAL)
        multi.on_decision(FINAL)
        multi.close()
    expected = [("state", State.SPEECH, "x"), ("decision", "female"), ("decision", "female"), ("close",)]
    assert first.events == second.events == expected
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "Broken" in errors[0].getMessage() and errors[0].exc_info
    assert any("Broken failed 4 times" in r.getMessage() for r in caplog.records)
    assert multi.failures == [0, 4, 0]

"""`listen`'s terminal output: one meter line redrawn in place, everything else once above it."""

from __future__ import annotations

import io
import logging
import math
from types import SimpleNamespace

import pytest

from voicegender.events import Decision, State
from voicegender.terminal import TerminalOutput, meter


def screen(text: str) -> list[str]:
    """What a terminal shows for ``text``: handles carriage return, erase-line and newline."""
    lines, col = [""], 0
    i = 0
    while i < len(text):
        if text.startswith("\x1b[2K", i):
            lines[-1], i = "", i + 4
            continue
        ch = text[i]
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("")
            col = 0
        else:
            line = lines[-1].ljust(col)
            lines[-1] = line[:col] + ch + line[col + 1 :]
            col += 1
        i += 1
    return lines


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0  # every draw is due
        return self.now


def draw(out: TerminalOutput, level_db: float) -> None:
    out(SimpleNamespace(level_db=level_db))


@pytest.fixture
def tty():
    """The terminal: the meter's stream, and the log handler's too (stdout and stderr at a prompt)."""
    return io.StringIO()


def test_meter_bar() -> None:
    assert meter(-70.0, 10) == "[" + "." * 10 + "]"
    assert meter(0.0, 10) == "[" + "#" * 10 + "]"
    assert meter(-35.0, 10) == "[#####.....]"


def test_the_word_follows_the_level_not_a_stale_state(tty) -> None:
    out = TerminalOutput(tty, clock=Clock(), silence_db=-55.0)
    out.on_state(State.LISTENING, "input mic (48000 Hz)")
    draw(out, -30.0)
    assert screen(tty.getvalue())[-1].split()[3] == "sound"  # loud, not speech
    out.on_state(State.SPEECH)
    draw(out, -20.0)
    assert screen(tty.getvalue())[-1].split()[3] == "speech"
    # The voice stopped; the utterance is only closed a moment later, but the meter says so at once.
    draw(out, -97.0)
    assert screen(tty.getvalue())[-1].split()[1:4] == ["-97.0", "dB", "silence"]
    out.on_state(State.ERROR, "microphone lost")
    draw(out, -97.0)
    assert screen(tty.getvalue())[-1].split()[3] == "error"


def test_decisions_and_log_records_print_once_above_the_meter(tty) -> None:
    out = TerminalOutput(tty, clock=Clock())
    logger = logging.getLogger("voicegender.test_terminal")
    logger.addHandler(out.log_handler(tty))
    logger.propagate = False
    try:
        out.on_state(State.LISTENING, "input mic (16000 Hz)")
        draw(out, -20.0)
        out.on_decision(Decision("male", 0.2, 1.0, 0.0, 1.0, 3, final=False))  # provisional: meter only
        draw(out, -20.0)
        logger.warning("input mic: 2 audio chunk(s) lost to overflow")
        draw(out, -20.0)
        out.on_decision(Decision("male", 0.12, 1.5, 0.25, 1.75, 5))
        draw(out, -60.0)
        out.on_state(State.STOPPED)
        out.close()
    finally:
        logger.handlers.clear()
    shown = screen(tty.getvalue())
    assert shown[0] == "listening: input mic (16000 Hz)"
    assert shown[1] == "warning: input mic: 2 audio chunk(s) lost to overflow"
    assert shown[2] == "decision: male      p_female=0.12 speech=1.5s at 0.25-1.75s"
    assert shown[3] == "stopped"
    assert shown[4] == ""  # the meter line is gone at the end, the prompt starts on a fresh line
    assert len(shown) == 5


def test_no_speech_decision_and_stopped_without_start(tty) -> None:
    out = TerminalOutput(tty, clock=Clock())
    out.on_decision(Decision("no_speech", math.nan, 0.0, 0.0, 0.0, 0))
    out.on_state(State.STOPPED)  # never listened (e.g. the microphone could not be opened): no line
    assert screen(tty.getvalue()) == ["decision: no_speech p_female=nan speech=0.0s at 0.00-0.00s", ""]

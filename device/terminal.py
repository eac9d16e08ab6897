"""``voicegender listen``: a live level meter, the state and each decision, for a person at a terminal.

The terminal output owns the screen: the meter is one line redrawn in place (carriage return) at
most ``refresh`` times a second, and everything else (final decisions, errors, and log records
through ``log_handler``) is printed once, on a line of its own above it: the meter line is cleared
first and redrawn at the next tick, so no line is ever broken into the meter.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from .events import Decision, State

METER_WIDTH = 30
METER_FLOOR_DB = -70.0
"""Level (dBFS) shown as an empty meter; 0 dBFS fills it."""
CLEAR_LINE = "\r\x1b[2K"


def meter(level_db: float, width: int = METER_WIDTH) -> str:
    """``[#####.....]`` for a level between METER_FLOOR_DB and 0 dBFS."""
    fill = round(width * min(max((level_db - METER_FLOOR_DB) / -METER_FLOOR_DB, 0.0), 1.0))
    return "[" + "#" * fill + "." * (width - fill) + "]"


class TerminalOutput:
    """Implements ``events.Output`` and is the daemon's ``on_chunk`` hook (the meter).

    ``silence_db`` is the level below which nothing counts as speech (``[vad] min_level_db``): the
    meter calls such audio "silence" even while an utterance is still open (its end is only known
    a moment later), "speech" for audio in an utterance, and "sound" for anything else.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        refresh: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        silence_db: float = -55.0,
    ) -> None:
        self._stream = stream
        self._interval = 1.0 / refresh
        self._clock = clock
        self.silence_db = silence_db
        self._last_draw = -1e9
        self._state = State.STARTING
        self._last = ""
        self._meter_shown = False
        self._listened = False

    @property
    def stream(self) -> IO[str]:
        return self._stream or sys.stdout

    def line(self, text: str, stream: IO[str] | None = None) -> None:
        """Print ``text`` on a line of its own (on ``stream``, default the meter's), above the meter."""
        if self._meter_shown:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self._meter_shown = False
        out = stream or self.stream
        out.write(text + "\n")
        out.flush()

    def on_state(self, state: State, detail: str = "") -> None:
        self._state = state
        self._listened = self._listened or state is State.LISTENING
        # "stopped" only after listening: a run that never started ends with its error alone.
        shown = state is State.ERROR or (state is State.STOPPED and self._listened)
        if shown or (state is State.LISTENING and detail):
            self.line(f"{state.value}" + (f": {detail}" if detail else ""))

    def on_decision(self, decision: Decision) -> None:
        # Provisional decisions only update the meter line; final ones get a line of their own.
        self._last = f"{'last' if decision.final else 'now'}: {decision.label} {decision.p_female:.2f}"
        if decision.final:
            self.line(
                f"decision: {decision.label:9s} p_female={decision.p_female:.2f} "
                f"speech={decision.speech_seconds:.1f}s at {decision.start:.2f}-{decision.end:.2f}s"
            )

    def activity(self, level_db: float) -> str:
        """The word on the meter line for the current level and state."""
        if self._state in (State.STARTING, State.ERROR, State.STOPPED):
            return self._state.value
        if level_db < self.silence_db:
            return "silence"
        return "speech" if self._state is State.SPEECH else "sound"

    def __call__(self, processor: Any) -> None:
        now = self._clock()
        if now - self._last_draw < self._interval:
            return
        self._last_draw = now
        level = processor.level_db
        text = f"{meter(level)} {level:6.1f} dB  {self.activity(level):8s} {self._last}".rstrip()
        self.stream.write(CLEAR_LINE + text)
        self.stream.flush()
        self._meter_shown = True

    def log_handler(self, stream: IO[str] | None = None) -> logging.Handler:
        """A logging handler that prints each record as a line of its own above the meter, on
        ``stream`` (default: whatever ``sys.stderr`` is at the time)."""
        return _TerminalLogHandler(self, stream)

    def close(self) -> None:
        if self._meter_shown:
            self.stream.write("\n")
            self.stream.flush()
            self._meter_shown = False


class _TerminalLogHandler(logging.Handler):
    """``level: message`` on stderr, after clearing the meter."""

    def __init__(self, terminal: TerminalOutput, stream: IO[str] | None) -> None:
        super().__init__()
        self.terminal = terminal
        self.stream = stream
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.levelname.lower()}: {self.format(record)}"
            self.terminal.line(text, stream=self.stream or sys.stderr)
        except Exception:
            self.handleError(record)

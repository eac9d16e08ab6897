"""``voicegender listen``: a live level meter, the state and each decision, for a person at a terminal.

The meter is one line redrawn in place (carriage return) at most ``refresh`` times a second;
decisions and state changes are printed on lines of their own above it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

from .events import Decision, State

METER_WIDTH = 30
METER_FLOOR_DB = -70.0
"""Level (dBFS) shown as an empty meter; 0 dBFS fills it."""


def meter(level_db: float, width: int = METER_WIDTH) -> str:
    """``[#####.....]`` for a level between METER_FLOOR_DB and 0 dBFS."""
    fill = round(width * min(max((level_db - METER_FLOOR_DB) / -METER_FLOOR_DB, 0.0), 1.0))
    return "[" + "#" * fill + "." * (width - fill) + "]"


class TerminalOutput:
    """Implements ``events.Output`` and is the daemon's ``on_chunk`` hook (the meter)."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        refresh: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interval = 1.0 / refresh
        self._clock = clock
        self._last_draw = -1e9
        self._state = State.STARTING
        self._last = ""
        self._meter_shown = False

    @property
    def stream(self) -> IO[str]:
        return self._stream or sys.stdout

    def _line(self, text: str) -> None:
        """Print a line of its own, clearing the meter line first."""
        prefix = "\r\x1b[2K" if self._meter_shown else ""
        self.stream.write(prefix + text + "\n")
        self.stream.flush()
        self._meter_shown = False

    def on_state(self, state: State, detail: str = "") -> None:
        self._state = state
        if state in (State.ERROR, State.STOPPED) or (state is State.LISTENING and detail):
            self._line(f"{state.value}" + (f": {detail}" if detail else ""))

    def on_decision(self, decision: Decision) -> None:
        # Provisional decisions only update the meter line; final ones get a line of their own.
        self._last = f"{'last' if decision.final else 'now'}: {decision.label} {decision.p_female:.2f}"
        if decision.final:
            self._line(
                f"decision: {decision.label:9s} p_female={decision.p_female:.2f} "
                f"speech={decision.speech_seconds:.1f}s at {decision.start:.2f}-{decision.end:.2f}s"
            )

    def __call__(self, processor: Any) -> None:
        now = self._clock()
        if now - self._last_draw < self._interval:
            return
        self._last_draw = now
        level = processor.level_db
        self.stream.write(f"\r\x1b[2K{meter(level)} {level:6.1f} dB  {self._state.value:9s} {self._last}")
        self.stream.flush()
        self._meter_shown = True

    def close(self) -> None:
        if self._meter_shown:
            self.stream.write("\n")
            self.stream.flush()
            self._meter_shown = False

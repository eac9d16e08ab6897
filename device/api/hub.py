"""Hands the daemon's states, decisions and input level to the API thread without ever blocking.

The daemon's audio thread calls ``EventHub`` as one of its outputs. Each call takes a short lock,
updates the snapshot that ``/api/v1/state`` reads, appends the event to a bounded queue (when the
API falls behind, the oldest events are dropped, never the audio loop slowed) and asks the API's
event loop to look, through ``call_soon_threadsafe``, which only writes a byte to a pipe.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..decisionlog import decision_record, iso_utc
from ..events import Decision, State

LEVEL_INTERVAL = 0.2
"""Seconds between level events (the page's meter needs no more than 5 a second)."""
PENDING_EVENTS = 1000
"""Events kept for the API thread; older ones are dropped when it falls that far behind."""


def level_event(level_db: float, speech: bool, t: float) -> dict[str, Any]:
    level = round(level_db, 1) if math.isfinite(level_db) else None
    return {"type": "level", "time": iso_utc(t), "level_db": level, "speech": speech}


def state_event(state: State, detail: str, t: float) -> dict[str, Any]:
    return {"type": "state", "time": iso_utc(t), "state": str(state), "detail": detail}


def decision_event(decision: Decision, t: float) -> dict[str, Any]:
    """A decision as the decisions log records it, tagged ``type: decision`` (provisional ones too)."""
    return {"type": "decision", **decision_record(decision, t)}


class EventHub:
    """The daemon's side of the API (implements ``events.Output`` and the daemon's chunk hook)."""

    def __init__(
        self, decisions_kept: int = 1000, hold_seconds: float = 3.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: deque[dict[str, Any]] = deque(maxlen=PENDING_EVENTS)
        self._decisions: deque[dict[str, Any]] = deque(maxlen=decisions_kept)
        self._wakeup: Callable[[], None] | None = None
        self.hold_seconds = hold_seconds
        """How long the LEDs show a final decision ([leds] decision_hold_seconds), for the page."""
        self.dropped = 0
        """Events dropped because the API thread fell behind."""
        self._state = state_event(State.STARTING, "", clock())
        self._level: dict[str, Any] | None = None
        self._last_decision: dict[str, Any] | None = None
        self._last_level_at = -math.inf
        self._final_at = -math.inf

    # -- the daemon's thread --------------------------------------------------------------------------

    def on_state(self, state: State, detail: str = "") -> None:
        self._publish(state_event(state, detail, self._clock()), state=True)

    def on_decision(self, decision: Decision) -> None:
        now = self._clock()
        if decision.final:
            self._final_at = now
        self._publish(decision_event(decision, now), final=decision.final)

    def on_chunk(self, processor: Any) -> None:
        now = self._clock()
        if now - self._last_level_at < LEVEL_INTERVAL:
            return
        self._last_level_at = now
        speech = self._state["state"] == str(State.SPEECH)
        self._publish(level_event(processor.level_db, speech, now), level=True)

    def close(self) -> None:
        pass  # the API server is stopped by its owner

    def _publish(
        self, event: dict[str, Any], state: bool = False, final: bool = False, level: bool = False
    ) -> None:
        with self._lock:
            if state:
                self._state = event
            elif level:
                self._level = event
            else:
                self._last_decision = event
                if final:
                    self._decisions.append(event)
            if len(self._pending) == self._pending.maxlen:
                self.dropped += 1
            self._pending.append(event)
            wakeup = self._wakeup
        if wakeup is not None:
            with contextlib.suppress(RuntimeError):  # the API's loop has closed
                wakeup()

    # -- the API's thread -------------------------------------------------------------------------------

    def attach(self, wakeup: Callable[[], None] | None) -> None:
        """Have ``wakeup()`` called (from the daemon's thread) whenever an event is waiting."""
        with self._lock:
            self._wakeup = wakeup

    def take(self) -> list[dict[str, Any]]:
        """The events published since the last call, oldest first."""
        with self._lock:
            events = list(self._pending)
            self._pending.clear()
        return events

    def decisions(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` final decisions, oldest first, as the decisions log records them."""
        with self._lock:
            items = list(self._decisions)
        return [{k: v for k, v in d.items() if k != "type"} for d in items[-limit:]] if limit > 0 else []

    def snapshot(self) -> dict[str, Any]:
        """The daemon's state for ``/api/v1/state``."""
        with self._lock:
            state, level, last = dict(self._state), self._level, self._last_decision
            final_at = self._final_at
        shown = state["state"]
        held = self.hold_seconds == 0 or self._clock() - final_at < self.hold_seconds
        if last is not None and last.get("final") and shown == str(State.LISTENING) and held:
            shown = "decided"  # the LEDs still show the last final decision (its hold time)
        decision = None if last is None else {k: v for k, v in last.items() if k != "type"}
        return {
            "state": shown,
            "daemon_state": state["state"],
            "detail": state["detail"],
            "since": state["time"],
            "level_db": None if level is None else level["level_db"],
            "decision": decision,
            "hold_seconds": self.hold_seconds,
        }

"""The systemd notify protocol: READY, STATUS, STOPPING, RELOADING and watchdog pings.

Uses ``systemd.daemon.notify`` when systemd-python is importable, else sends the same datagram
itself to ``NOTIFY_SOCKET`` (a leading ``@`` names an abstract socket: a leading NUL byte).
Without ``NOTIFY_SOCKET`` (not started by systemd with Type=notify) every call is a no-op that
returns False. ``watchdog()`` is cheap enough to call on every loop iteration: it pings only when
half of ``WATCHDOG_USEC`` has passed since the last ping.

A ``Notifier`` is also an ``events.Output``: it keeps the unit's STATUS line (shown by
``systemctl status voicegender``) up to date with the state and the last final decision, followed
by notes other parts set from any thread (``set_note``, e.g. the MQTT link's health and drops),
which the next ``watchdog()`` call sends.
READY/STOPPING/watchdog stay explicit calls for the daemon to make at the right moments.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .events import Decision, State

log = logging.getLogger(__name__)


def _daemon_module() -> Any:
    try:
        from systemd import daemon
    except ImportError:
        return None
    return daemon


def _watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd set for this process, in seconds (None: no watchdog)."""
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None  # the watchdog is meant for another process (e.g. our parent)
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


class Notifier:
    """Talks to systemd's notify socket; every method returns True if a datagram was sent."""

    def __init__(self, use_systemd: bool | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET", "")
        self.enabled = bool(self.address)
        self._daemon = _daemon_module() if use_systemd is not False and self.enabled else None
        if use_systemd and self.enabled and self._daemon is None:
            log.debug("systemd-python not importable; using the built-in notify sender")
        self.watchdog_interval = _watchdog_interval() if self.enabled else None
        self._clock = clock
        self._last_ping: float | None = None
        self._sock: socket.socket | None = None
        self._warned = False
        self._status = ""
        self._state: State | None = None
        self._last_decision = ""
        self._detail = ""
        self._notes: dict[str, str] = {}
        self._notes_lock = threading.Lock()
        self._notes_changed = False

    def notify(self, message: str) -> bool:
        """Send one raw notify message (``KEY=value`` lines)."""
        if not self.enabled:
            return False
        try:
            if self._daemon is not None:
                return bool(self._daemon.notify(message))
            return self._sendto(message.encode())
        except OSError as exc:
            if not self._warned:  # systemd gone or socket wrong: say so once, keep running
                log.warning("systemd notify to %s failed: %s", self.address, exc)
                self._warned = True
            return False

    def _sendto(self, data: bytes) -> bool:
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        elif not addr.startswith("/"):
            raise OSError(f"unsupported NOTIFY_SOCKET address {self.address!r}")
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        return self._sock.sendto(data, addr) == len(data)

    def ready(self, status: str = "") -> bool:
        """Startup finished (Type=notify units count as started only now)."""
        if status:
            with self._notes_lock:
                status = _one_line("; ".join([status, *self._notes.values()]))
            self._status = status
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        """Set the free-form status line; an unchanged line is not re-sent."""
        text = _one_line(text)
        if text == self._status:
            return False
        self._status = text
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        """Reload started (Type=notify-reload); call ``ready()`` again when it is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def watchdog_due(self, now: float | None = None) -> bool:
        if self.watchdog_interval is None:
            return False
        now = self._clock() if now is None else now
        return self._last_ping is None or now - self._last_ping >= self.watchdog_interval

    def watchdog(self, now: float | None = None) -> bool:
        """Ping the watchdog if half its timeout has passed since the last ping (and send changed notes)."""
        if self._notes_changed:
            self._notes_changed = False
            self._update_status(self._detail)
        now = self._clock() if now is None else now
        if not self.watchdog_due(now):
            return False
        self._last_ping = now  # even if sending fails: retry next interval, not every iteration
        return self.notify("WATCHDOG=1")

    # events.Output: keep STATUS= current
    def on_state(self, state: State, detail: str = "") -> None:
        self._state = state
        self._update_status(detail)

    def on_decision(self, decision: Decision) -> None:
        if decision.final and decision.label != "no_speech":
            stamp = time.strftime("%H:%M:%S")
            self._last_decision = f"last: {decision.label} (p_female {decision.p_female:.2f}) at {stamp}"
            self._update_status()

    def set_note(self, key: str, text: str) -> None:
        """Show ``text`` at the end of STATUS= ("" removes it); thread-safe, sent by ``watchdog()``."""
        with self._notes_lock:
            if self._notes.get(key, "") == text:
                return
            if text:
                self._notes[key] = text
            else:
                self._notes.pop(key, None)
            self._notes_changed = True

    def _update_status(self, detail: str = "") -> None:
        self._detail = detail
        if self._state is None:
            return
        parts = [self._state.value + (f": {detail}" if detail else "")]
        if self._last_decision and self._state in (State.LISTENING, State.SPEECH):
            parts.append(self._last_decision)
        with self._notes_lock:
            parts += self._notes.values()
        self.status("; ".join(parts))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    return " ".join(text.split())

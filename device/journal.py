"""Decisions and state changes to the systemd journal (structured fields) or to stderr.

Under systemd (``JOURNAL_STREAM`` or ``INVOCATION_ID`` set) with systemd-python importable, each
final decision is one journal entry with searchable fields, e.g.
``journalctl -u voicegender VOICEGENDER_LABEL=female``. Otherwise the same text goes through
``logging`` as one ``key=value`` line (on stderr, which systemd also files in the journal).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from typing import Any

from .errors import VoicegenderError
from .events import Decision, State

IDENTIFIER = "voicegender"
LOG_ERR, LOG_INFO, LOG_DEBUG = 3, 6, 7
"""syslog priorities used here (journal PRIORITY field)."""
_PRIORITY_LEVEL = {LOG_ERR: logging.ERROR, LOG_INFO: logging.INFO, LOG_DEBUG: logging.DEBUG}


def under_systemd() -> bool:
    """True when systemd started this process (its stdout/stderr already go to the journal)."""
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def _journal_module() -> Any:
    try:
        from systemd import journal
    except ImportError:
        return None
    return journal


def logfmt(head: str, fields: dict[str, Any]) -> str:
    """``head key=value ...``; values with spaces or quotes are JSON-quoted, booleans lower-case."""
    parts = [head]
    for key, value in fields.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if not text or any(c in text for c in ' "=\n'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


class JournalOutput:
    """Records final decisions (INFO) and state changes (starting/recovered/error/stopped).

    Speech/listening toggles and provisional decisions are sent at DEBUG only when ``verbose``:
    they come several times a second while someone talks. A repeated identical state (e.g. the
    same error on every retry) is recorded once.
    """

    def __init__(self, verbose: bool = False, use_journal: bool | None = None) -> None:
        use = under_systemd() if use_journal is None else use_journal
        journal = _journal_module() if use else None
        self._send = journal.send if journal is not None else None
        self._log = logging.getLogger("voicegender.decisions")
        self.verbose = verbose
        self._last: tuple[State, str] | None = None

    @property
    def to_journal(self) -> bool:
        return self._send is not None

    def on_state(self, state: State, detail: str = "") -> None:
        previous, self._last = self._last, (state, detail)
        if (state, detail) == previous:
            return
        was = previous[0] if previous else None
        if state is State.ERROR:
            priority = LOG_ERR
        elif state is State.SPEECH or (state is State.LISTENING and was is State.SPEECH):
            if not self.verbose:
                return
            priority = LOG_DEBUG
        else:
            priority = LOG_INFO
        message = logfmt(f"state {state.value}", {"detail": detail} if detail else {})
        self._emit(priority, message, {"VOICEGENDER_STATE": state.value})

    def on_decision(self, decision: Decision) -> None:
        if not decision.final and not self.verbose:
            return
        d = decision.to_dict()
        journal_fields = {
            "VOICEGENDER_LABEL": decision.label,
            "VOICEGENDER_SPEECH_SECONDS": f"{d['speech_seconds']:.3f}",
            "VOICEGENDER_START": f"{d['start']:.3f}",
            "VOICEGENDER_END": f"{d['end']:.3f}",
            "VOICEGENDER_WINDOWS": str(decision.windows),
            "VOICEGENDER_FINAL": "1" if decision.final else "0",
        }
        if math.isfinite(decision.p_female):  # NaN for no_speech: leave the field out
            journal_fields["VOICEGENDER_P_FEMALE"] = f"{d['p_female']:.4f}"
        priority = LOG_INFO if decision.final else LOG_DEBUG
        self._emit(priority, logfmt("decision", d), journal_fields)

    def _emit(self, priority: int, message: str, fields: dict[str, str]) -> None:
        if self._send is not None:
            self._send(MESSAGE=message, PRIORITY=str(priority), SYSLOG_IDENTIFIER=IDENTIFIER, **fields)
        else:
            self._log.log(_PRIORITY_LEVEL[priority], message)

    def close(self) -> None:
        pass


class _StderrFormatter(logging.Formatter):
    """Under systemd, prefix ``<priority>`` so journald keeps the level; journald adds the time."""

    _PRIORITIES = ((logging.ERROR, LOG_ERR), (logging.WARNING, 4), (logging.INFO, LOG_INFO))

    def __init__(self, systemd: bool) -> None:
        fmt = "%(name)s: %(message)s" if systemd else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        super().__init__(fmt)
        self.systemd = systemd

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.systemd:
            return text
        priority = next((p for level, p in self._PRIORITIES if record.levelno >= level), LOG_DEBUG)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (it may be replaced after
    set-up, e.g. by a test harness or a daemon that redirects its output)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(
    level: int | str = "info", use_journal: bool | None = None, handler: logging.Handler | None = None
) -> logging.Handler:
    """Send the ``voicegender`` loggers to the journal under systemd, else to stderr, or to ``handler``
    (e.g. a terminal that owns the screen); returns the handler in use."""
    if isinstance(level, str):
        numeric = logging.getLevelName(level.upper())
        if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR") or not isinstance(numeric, int):
            raise VoicegenderError(f"log level {level!r} is not one of debug, info, warning, error")
        level = numeric
    if handler is None:
        systemd = under_systemd() if use_journal is None else use_journal
        journal = _journal_module() if systemd else None
        if journal is not None:
            handler = journal.JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER)
        else:
            handler = _StderrHandler()
            handler.setFormatter(_StderrFormatter(systemd))
    handler._voicegender = True  # type: ignore[attr-defined]  # so a second call replaces, not adds
    logger = logging.getLogger("voicegender")
    for old in [h for h in logger.handlers if getattr(h, "_voicegender", False)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # no double lines if a library configures the root logger
    return handler

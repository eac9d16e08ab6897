"""Final decisions as JSON lines in a size-rotated local file; never audio, never state changes.

Each line: ``{"time": "2025-01-31T12:00:00.123Z", "label": ..., "p_female": ..., "speech_seconds": ...,
"start": ..., "end": ..., "windows": ..., "final": true}`` (p_female is null for no_speech). When the
next line would take the file past ``max_bytes`` it is renamed ``.1`` (``.1`` -> ``.2`` ...; the
oldest is dropped), so at most ``(backups + 1) * max_bytes`` bytes are ever kept.

By default the file is ``decisions.jsonl`` in the state directory: systemd's ``StateDirectory=``
(``$STATE_DIRECTORY``, /var/lib/voicegender for the service), else the user's own
(``$XDG_STATE_HOME/voicegender``, else ``~/.local/state/voicegender``), so any user can run the daemon.
Directories it creates are private (0700): the log says how people's voices sounded.

Each line is flushed to the kernel at once (a crashed or killed daemon loses nothing) but not
fsync'ed: only a power cut can lose the last few seconds of lines, and an fsync per decision would
stall the audio loop on a slow SD card and wear it. The file is fsync'ed on close.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .errors import VoicegenderError
from .events import Decision, State
from .outputs import decision_fields

log = logging.getLogger(__name__)

LOG_NAME = "decisions.jsonl"
STATE_SUBDIR = "voicegender"
HINT = (
    "write it elsewhere with --decision-log PATH or keep none with --decision-log off "
    "(in the config: [decision_log] path = ... or enabled = false)"
)


def state_directory(environ: Mapping[str, str] | None = None) -> Path:
    """The directory for the default decision log.

    Under systemd the unit's ``StateDirectory=`` (``$STATE_DIRECTORY``; the first one if it lists
    several), else ``$XDG_STATE_HOME/voicegender`` (an absolute path, as the XDG spec requires),
    else ``~/.local/state/voicegender``.
    """
    env = os.environ if environ is None else environ
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    xdg = env.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / STATE_SUBDIR
    home = env.get("HOME") or _passwd_home()
    if not home:
        raise VoicegenderError(f"decision log: no home directory to keep it in (HOME is not set); {HINT}")
    return Path(home) / ".local" / "state" / STATE_SUBDIR


def _passwd_home() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):
        return ""


@dataclass(frozen=True)
class DecisionLogSettings:
    """Local JSON-lines log of decisions ([decision_log] in the config)."""

    enabled: bool = True
    """False: keep no decision log."""
    path: str = ""
    """Log file; empty = decisions.jsonl in the state directory: $STATE_DIRECTORY under systemd
    (/var/lib/voicegender), else $XDG_STATE_HOME/voicegender, else ~/.local/state/voicegender."""
    max_bytes: int = 1024 * 1024
    """Rotate before the file would grow past this size."""
    backups: int = 5
    """Rotated files kept (decisions.jsonl.1 is the newest); 0 keeps only the current file."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", str(self.path))  # accept a Path too
        if self.max_bytes < 256:
            raise VoicegenderError(f"[decision_log] max_bytes must be >= 256, got {self.max_bytes}")
        if self.backups < 0:
            raise VoicegenderError(f"[decision_log] backups must be >= 0, got {self.backups}")

    def resolve(self) -> Path:
        """The log file: ``path`` (``~`` expanded), or the default in ``state_directory()``."""
        return Path(self.path).expanduser() if self.path else state_directory() / LOG_NAME


def iso_utc(t: float) -> str:
    """Unix time as ISO 8601 UTC with milliseconds, e.g. ``2025-01-31T12:00:00.123Z``."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decision_record(decision: Decision, t: float) -> dict[str, Any]:
    """A final decision as logged (and published over MQTT): ``{"time": ..., **decision_fields}``."""
    return {"time": iso_utc(t), **decision_fields(decision)}


class DecisionLog:
    """Appends one JSON line per final decision (implements ``events.Output``)."""

    def __init__(self, settings: DecisionLogSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.path: Path | None = settings.resolve() if settings.enabled else None
        self._clock = clock
        self._file: IO[bytes] | None = None
        self._size = 0
        if settings.enabled:
            self._open()

    def _fail(self, doing: str, exc: OSError) -> VoicegenderError:
        reason = exc.strerror or str(exc)
        return VoicegenderError(f"decision log {self.path}: cannot {doing}: {reason}; {HINT}")

    def _open(self) -> None:
        assert self.path is not None
        missing = []  # directories to create, deepest first; a file in the way fails in mkdir
        directory = self.path.parent
        while not directory.is_dir() and directory != directory.parent:
            missing.append(directory)
            directory = directory.parent
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=0o700, exist_ok=True)
            except OSError as exc:
                raise self._fail(f"create directory {directory}", exc) from exc
        try:
            self._file = open(self.path, "ab")  # noqa: SIM115  # kept open for the daemon's life
        except OSError as exc:
            raise self._fail("open for appending", exc) from exc
        self._size = self._file.tell()
        log.info("decisions are logged to %s", self.path)

    def on_state(self, state: State, detail: str = "") -> None:
        pass  # decisions only

    def on_decision(self, decision: Decision) -> None:
        if self._file is None or not decision.final:
            return
        record = decision_record(decision, self._clock())
        line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
        try:
            if self._size > 0 and self._size + len(line) > self.settings.max_bytes:
                self._rotate()
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            raise self._fail("write", exc) from exc
        self._size += len(line)

    def _rotate(self) -> None:
        assert self._file is not None and self.path is not None
        self._file.close()
        self._file = None
        backups = [self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.settings.backups + 1)]
        names = [self.path, *backups]  # newest to oldest
        names[-1].unlink(missing_ok=True)
        for newer, older in zip(names[-2::-1], names[:0:-1], strict=True):
            if newer.exists():
                os.replace(newer, older)
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError:
            pass  # best effort at shutdown; every line was already flushed
        self._file.close()
        self._file = None

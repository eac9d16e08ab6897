"""The daemon's configuration: one TOML file, one frozen dataclass per section.

Every key is optional; a missing key keeps its default. Unknown sections or keys and values of the
wrong type are errors naming the file, section and key, so a typo never silently does nothing.
Command-line flags override file values through the same checks (``with_overrides``).
``render_toml`` writes the documented defaults that ``firmware_config/config.toml`` ships.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import json
import tomllib
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .api.settings import ApiSettings
from .decision import DecisionSettings
from .decisionlog import DecisionLogSettings
from .errors import VoicegenderError
from .leds import LedSettings
from .mqtt import MqttSettings
from .vad import VadSettings

DEFAULT_CONFIG_PATH = Path("/etc/voicegender/config.toml")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class ModelSettings:
    """The classifier ([model] in the config)."""

    path: str = ""
    """TFLite model file, with its .json metadata beside it; empty = the model shipped with the package."""
    num_threads: int = 1
    """Interpreter threads; 1 leaves the Pi's other cores to audio capture and the rest of the system."""

    def __post_init__(self) -> None:
        if not 1 <= self.num_threads <= 16:
            raise VoicegenderError(f"[model] num_threads must be in 1..16, got {self.num_threads}")


@dataclass(frozen=True)
class AudioSettings:
    """Where audio comes from ([audio] in the config)."""

    input: str = "mic"
    """"mic" = a microphone (see device), an audio file path, or "-" = raw s16le mono PCM on stdin."""
    device: str = ""
    """Microphone: part of its name or its index (see `voicegender devices`); empty = system default."""
    sample_rate: int = 0
    """Capture rate in Hz; 0 = the microphone's native rate (stdin: 16000). Resampled to 16 kHz."""
    chunk_seconds: float = 0.1
    """Audio block size; smaller blocks lower latency and raise CPU use."""
    queue_chunks: int = 50
    """Blocks buffered between the capture thread and the classifier before overflowing."""
    realtime: bool = True
    """File input only: deliver the file at its real speed (false = as fast as possible)."""
    stall_seconds: float = 5.0
    """A microphone that delivers nothing for this long is treated as lost and reopened."""
    retry_max_seconds: float = 30.0
    """Longest wait between attempts to reopen a missing microphone (waits 1, 2, 4 ... s)."""

    def __post_init__(self) -> None:
        problems = []
        if not self.input:
            problems.append('input must be "mic", an audio file path or "-"')
        if self.sample_rate != 0 and not 4000 <= self.sample_rate <= 384000:
            problems.append(f"sample_rate must be 0 or 4000..384000 Hz, got {self.sample_rate}")
        if not 0.005 <= self.chunk_seconds <= 1.0:
            problems.append(f"chunk_seconds must be in [0.005, 1], got {self.chunk_seconds}")
        if self.queue_chunks < 1:
            problems.append(f"queue_chunks must be >= 1, got {self.queue_chunks}")
        if self.stall_seconds <= 0 or self.retry_max_seconds < 1:
            problems.append("stall_seconds must be > 0 and retry_max_seconds >= 1")
        if problems:
            raise VoicegenderError(f"[audio] {'; '.join(problems)}")

    @property
    def is_microphone(self) -> bool:
        return self.input == "mic"

    @property
    def device_spec(self) -> str | int | None:
        """The device as sounddevice wants it: an index, a name, or None for the default."""
        text = self.device.strip()
        if not text:
            return None
        return int(text) if text.isdigit() else text


@dataclass(frozen=True)
class LoggingSettings:
    """Diagnostics ([logging] in the config)."""

    level: str = "info"
    """Least severe message logged: debug, info, warning or error."""
    verbose: bool = False
    """Also log speech start/end and provisional decisions (several a second while someone talks)."""

    def __post_init__(self) -> None:
        if self.level.lower() not in LOG_LEVELS:
            raise VoicegenderError(
                f"[logging] level must be one of {', '.join(LOG_LEVELS)}, got {self.level!r}"
            )


@dataclass(frozen=True)
class Config:
    """The whole configuration: one field per TOML section."""

    model: ModelSettings = field(default_factory=ModelSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    decision: DecisionSettings = field(default_factory=DecisionSettings)
    leds: LedSettings = field(default_factory=LedSettings)
    decision_log: DecisionLogSettings = field(default_factory=DecisionLogSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]
"""TOML section name -> its settings dataclass, in file order."""


def _type_name(kind: Any) -> str:
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        Path: "a path string",
    }[kind]


def _convert(value: Any, kind: Any) -> Any:
    """``value`` as ``kind``, or raise TypeError. TOML ints are fine for floats; bools never are numbers."""
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    elif kind is Path and isinstance(value, str | Path):
        return Path(value)
    raise TypeError(f"expected {_type_name(kind)}, got {json.dumps(value, default=str)}")


@cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build_section(cls: type, name: str, values: dict[str, Any], base: Any = None) -> Any:
    """A ``cls`` from TOML ``values`` (on top of ``base`` or the defaults); errors name ``[name] key``."""
    types = _field_types(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise VoicegenderError(f"unknown key [{name}] {unknown[0]} (allowed: {', '.join(allowed)})")
    kwargs = {}
    for key, value in values.items():
        try:
            kwargs[key] = _convert(value, types[key])
        except TypeError as exc:
            raise VoicegenderError(f"[{name}] {key}: {exc}") from None
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except VoicegenderError as exc:
        text = str(exc)
        raise VoicegenderError(text if text.startswith(f"[{name}]") else f"[{name}] {text}") from None


def from_dict(data: dict[str, Any], base: Config | None = None) -> Config:
    """A Config from parsed TOML (sections of keys), on top of ``base`` or the defaults."""
    base = base or Config()
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise VoicegenderError(f"unknown section [{unknown[0]}] (allowed: {', '.join(SECTIONS)})")
    sections = {}
    for name, values in data.items():
        if not isinstance(values, dict):
            raise VoicegenderError(f"[{name}] must be a table of keys, got {json.dumps(values, default=str)}")
        sections[name] = build_section(SECTIONS[name], name, values, getattr(base, name))
    return dataclasses.replace(base, **sections)


def load_config(path: Path | str | None = None) -> Config:
    """Read the config file; with ``path=None`` a missing default file means all defaults."""
    explicit = path is not None
    path = Path(path) if explicit else DEFAULT_CONFIG_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise VoicegenderError(f"config {path}: file not found") from None
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise VoicegenderError(f"config {path}: unreadable ({reason})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise VoicegenderError(f"config {path}: not valid TOML ({exc})") from None
    try:
        return from_dict(data)
    except VoicegenderError as exc:
        raise VoicegenderError(f"config {path}: {exc}") from None


def with_overrides(config: Config, overrides: dict[str, dict[str, Any]]) -> Config:
    """``config`` with command-line values (``{section: {key: value}}``) applied and checked."""
    try:
        return from_dict({k: v for k, v in overrides.items() if v}, base=config)
    except VoicegenderError as exc:
        raise VoicegenderError(f"command line: {exc}") from None


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's one-line docstring, read from the class source (the string under the field)."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # JSON string escapes are valid TOML basic strings


def render_toml(config: Config | None = None) -> str:
    """The config as TOML, every key present with its documentation as a comment above it."""
    config = config or Config()
    lines = [
        "# voicegender daemon configuration (/etc/voicegender/config.toml).",
        "# Every key is optional: a missing key keeps the default shown here. `voicegender doctor` checks",
        "# this file; `systemctl reload voicegender` applies [decision], [leds], [decision_log],",
        "# [logging], [api] and [mqtt] changes without a restart ([model], [audio] and [vad] need one).",
    ]
    for name, cls in SECTIONS.items():
        section = getattr(config, name)
        lines += ["", f"[{name}]", f"# {inspect.getdoc(cls).splitlines()[0]}"]  # type: ignore[union-attr]
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            lines.append(f"# {docs.get(f.name, '')}".rstrip())
            lines.append(f"{f.name} = {_toml_value(getattr(section, f.name))}")
    return "\n".join(lines) + "\n"

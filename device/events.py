"""What flows from the decision stage to the outputs (LEDs, journal, decisions log, stdout)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol


class State(StrEnum):
    """What the daemon is doing; outputs show it (e.g. the status LED's blink pattern)."""

    STARTING = "starting"
    LISTENING = "listening"
    """Audio is flowing, no voice right now."""
    SPEECH = "speech"
    """Voice heard; collecting evidence for a decision."""
    ERROR = "error"
    """Something is wrong (e.g. microphone gone); the daemon keeps retrying."""
    STOPPED = "stopped"


@dataclass(frozen=True)
class Decision:
    """One utterance-level decision."""

    label: str
    """"male", "female", "uncertain" or "no_speech"."""
    p_female: float
    """Probability the voice sounds female: sigmoid of the mean log-odds over voiced windows."""
    speech_seconds: float
    """Seconds of voiced audio the decision rests on."""
    start: float
    """Start of the utterance, seconds from the start of the input."""
    end: float
    """End of the evidence used, seconds from the start of the input."""
    windows: int
    """Number of model windows averaged."""
    final: bool = True
    """False for a provisional decision made while the person is still speaking."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["p_female"] = round(self.p_female, 4)
        d["speech_seconds"] = round(self.speech_seconds, 3)
        d["start"] = round(self.start, 3)
        d["end"] = round(self.end, 3)
        return d


class Output(Protocol):
    """Something that shows or records decisions. Methods must not block the audio loop."""

    def on_state(self, state: State, detail: str = "") -> None: ...

    def on_decision(self, decision: Decision) -> None: ...

    def close(self) -> None: ...

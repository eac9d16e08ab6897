"""Small outputs: decisions as JSON lines on stdout, and a fan-out that contains failures."""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Sequence
from typing import IO, Any

from .events import Decision, Output, State

log = logging.getLogger(__name__)


def decision_fields(decision: Decision) -> dict[str, Any]:
    """``decision.to_dict()`` fit for JSON: a NaN p_female (no_speech) becomes null."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in decision.to_dict().items()
    }


class StdoutJsonOutput:
    """One JSON object per decision on stdout (``voicegender run --json``); states are not printed.

    Keys: label, p_female (null for no_speech), speech_seconds, start, end, windows, final.
    Provisional decisions are printed only with ``provisional=True``.
    """

    def __init__(self, stream: IO[str] | None = None, provisional: bool = False) -> None:
        self._stream = stream  # None: whatever sys.stdout is at print time
        self.provisional = provisional

    def on_state(self, state: State, detail: str = "") -> None:
        pass

    def on_decision(self, decision: Decision) -> None:
        if decision.final or self.provisional:
            stream = self._stream or sys.stdout
            stream.write(json.dumps(decision_fields(decision), allow_nan=False) + "\n")
            stream.flush()  # a reader on a pipe sees each decision as it is made

    def close(self) -> None:
        pass


class MultiOutput:
    """Sends every event to each output; one failing output never stops the others or the caller.

    A failure is logged with its traceback the first time for each output; later failures of the
    same output are only counted, and the count is logged at close.
    """

    def __init__(self, outputs: Sequence[Output]) -> None:
        self.outputs = list(outputs)
        self.failures = [0] * len(self.outputs)

    def _each(self, method: str, *args: object) -> None:
        for i, output in enumerate(self.outputs):
            try:
                getattr(output, method)(*args)
            except Exception:
                self.failures[i] += 1
                if self.failures[i] == 1:
                    log.exception("output %s failed in %s; carrying on without it", _name(output), method)

    def on_state(self, state: State, detail: str = "") -> None:
        self._each("on_state", state, detail)

    def on_decision(self, decision: Decision) -> None:
        self._each("on_decision", decision)

    def close(self) -> None:
        self._each("close")
        for output, count in zip(self.outputs, self.failures, strict=True):
            if count > 1:
                log.warning("output %s failed %d times", _name(output), count)


def _name(output: object) -> str:
    return type(output).__name__

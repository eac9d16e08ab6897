"""Test doubles for the daemon tests: a fake model and scripted audio sources.

The fake model really looks at its input: its log-odds of "female" rise with the spectral balance
``mean(c2) - mean(c4)`` of the window (on the fixtures, the female speaker's windows average about
+0, the male speaker's about -18), so a pipeline that feeds it the wrong frames gets wrong answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voicegender.frontend import FrontendSettings
from voicegender.model import ModelMetadata, Thresholds
from voicegender.sources import SourceEnded, SourceLost


class FakeModel:
    """``model.Model``'s interface (metadata + logits) with a hand-written rule instead of a network."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        fe = FrontendSettings()
        self.metadata = ModelMetadata(
            frontend=fe,
            window_frames=98,
            hop_frames=25,
            feature_mean=(0.0,) * fe.n_mfcc,
            feature_std=(1.0,) * fe.n_mfcc,
            thresholds=thresholds or Thresholds(),
        )
        self.calls = 0
        self.path = Path("fake-model.tflite")
        self.runtime = "fake"

    def logits(self, windows: np.ndarray) -> np.ndarray:
        # float64, so that its output moves with its input only (see test_pipeline's chunking test).
        windows = np.asarray(windows, dtype=np.float64)
        m = self.metadata
        assert windows.ndim == 3 and windows.shape[1:] == (m.window_frames, m.frontend.n_mfcc), windows.shape
        self.calls += len(windows)
        return ((windows[:, :, 2].mean(axis=1) - windows[:, :, 4].mean(axis=1) + 9.0) / 4.0).astype(
            np.float32
        )


class ScriptedSource:
    """An audio source that plays a script: arrays are chunks, "lost" raises SourceLost,
    None is a read timeout; after the script, SourceEnded. ``fail_opens`` makes the next opens fail."""

    def __init__(self, script: list, sample_rate: int = 16000, fail_opens: int = 0) -> None:
        self.name = "scripted mic"
        self.sample_rate = sample_rate
        self.overflows = 0
        self.script = list(script)
        self.fail_opens = fail_opens
        self.opens = 0
        self.is_open = False

    def open(self) -> None:
        self.opens += 1
        if self.fail_opens > 0:
            self.fail_opens -= 1
            raise SourceLost(f"microphone {self.name!r}: not found")
        self.is_open = True

    def read(self, timeout: float) -> np.ndarray | None:
        assert self.is_open, "read() on a closed source"
        if not self.script:
            raise SourceEnded(self.name)
        item = self.script.pop(0)
        if isinstance(item, str) and item == "lost":
            self.is_open = False
            raise SourceLost(f"microphone {self.name!r} lost: unplugged")
        if isinstance(item, str) and item.startswith("overflow"):
            self.overflows += int(item.split()[1])
            return None
        return item

    def close(self) -> None:
        self.is_open = False

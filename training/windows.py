"""Cut fixed-length training windows from the voiced parts of a clip."""

from __future__ import annotations

import numpy as np

from voicegender.frontend import Frontend


def voiced_window_starts(
    audio: np.ndarray,
    frontend: Frontend,
    window_frames: int,
    hop_frames: int,
    min_voiced: float = 0.5,
    floor_db: float = 35.0,
) -> np.ndarray:
    """Frame indices where a window of ``window_frames`` starts and at least ``min_voiced`` of its frames
    are within ``floor_db`` of the clip's loudest frames (a simple energy gate: training clips are
    mostly speech, so this only drops leading/trailing silence and long pauses)."""
    level = frontend.log_mel(audio).max(axis=1)
    if len(level) < window_frames:
        return np.zeros(0, dtype=np.int64)
    voiced = level > np.percentile(level, 95) - floor_db
    cum = np.concatenate(([0], np.cumsum(voiced)))
    starts = np.arange(0, len(level) - window_frames + 1, hop_frames)
    share = (cum[starts + window_frames] - cum[starts]) / window_frames
    return starts[share >= min_voiced]

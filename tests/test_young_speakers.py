"""Speakers below the shipped recipe's training age are left out of training, windows kept in step."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voicegender_training.datasets import Clip
from voicegender_training.features import FeatureSet
from voicegender_training.ship import drop_clips, too_young


def clip(name: str, age: str | None) -> Clip:
    attributes = (("age", age),) if age is not None else ()
    return Clip(Path(name), "male", name, "speechocean762", 1.0, attributes)


def test_too_young_reads_the_age_column_and_keeps_clips_without_one() -> None:
    assert too_young(clip("a", "8"), 13)
    assert too_young(clip("b", "12.5"), 13)
    assert not too_young(clip("c", "13"), 13)
    assert not too_young(clip("d", None), 13)
    assert not too_young(clip("e", ""), 13)
    assert not too_young(clip("f", "unknown"), 13)


def test_drop_clips_renumbers_windows_to_the_clips_left() -> None:
    clips = [clip(n, a) for n, a in (("a", "30"), ("b", "7"), ("c", None), ("d", "9"))]
    audio = [np.full(4, i, np.float32) for i in range(4)]
    window_clip = np.array([0, 0, 1, 2, 2, 2, 3, 1], np.int32)
    # Each window's first value says which clip it came from.
    x = np.repeat(window_clip.astype(np.float32)[:, None, None], 3, axis=1)
    fset = FeatureSet(x, window_clip, np.zeros(8, np.int8))
    drop = np.array([too_young(c, 13) for c in clips])

    windows, kept, kept_audio = drop_clips(fset, clips, audio, drop)

    assert [c.speaker for c in kept] == ["a", "c"]
    assert [int(a[0]) for a in kept_audio] == [0, 2]
    assert windows.clip.tolist() == [0, 0, 1, 1, 1]
    # Every window still belongs to the clip its index now names.
    assert [int(kept_audio[i][0]) for i in windows.clip] == windows.x[:, 0, 0].astype(int).tolist()

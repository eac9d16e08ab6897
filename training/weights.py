"""Training weights that keep any one corpus, language, gender or talkative speaker from dominating.

Every training speaker gets the same total weight, spread over its windows; within each group of
speakers (a corpus and language, e.g. Common Voice Kabyle) women and men then weigh the same. A group
with one gender only is balanced within its corpus instead, and a corpus with one gender only within
all the training data. Groups keep weight in proportion to their speakers, so a language with two
speakers does not count as much as one with two hundred. No speaker weighs more than ``MAX_WEIGHT``
times the average: one woman among 30 men in a language would otherwise outweigh a whole corpus.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from .datasets import GENDERS, Clip

MAX_WEIGHT = 4.0
"""Largest weight of one speaker, relative to the average."""


def group_of(clip: Clip) -> tuple[str, str]:
    """(corpus, language) of a clip; the language is '' when the corpus does not say."""
    return clip.corpus, dict(clip.attributes).get("lang", "")


def speaker_weights(clips: Sequence[Clip]) -> dict[str, float]:
    """Weight of each speaker (``Clip.speaker`` or the path of a speakerless clip), averaging 1."""
    speakers: dict[str, Clip] = {}
    for clip in clips:
        speakers.setdefault(clip.speaker or str(clip.path), clip)

    def counts(key) -> dict:
        table: dict = defaultdict(Counter)
        for clip in speakers.values():
            table[key(clip)][clip.gender] += 1
        return table

    levels = (counts(group_of), counts(lambda c: c.corpus), counts(lambda c: ""))
    keys = (group_of, lambda c: c.corpus, lambda c: "")
    weights = {}
    for name, clip in speakers.items():
        for table, key in zip(levels, keys, strict=True):
            by_gender = table[key(clip)]
            if all(by_gender[g] for g in GENDERS):
                break
        # Both genders of the group get half its speakers' weight.
        weights[name] = sum(by_gender.values()) / (len(GENDERS) * by_gender[clip.gender])
    mean = float(np.mean(list(weights.values())))
    return {name: min(w / mean, MAX_WEIGHT) for name, w in weights.items()}


def window_weights(clips: Sequence[Clip], window_clip: np.ndarray) -> np.ndarray:
    """Per-window weights for windows cut from ``clips`` (``window_clip`` indexes them): the speaker's
    weight shared evenly by its windows, scaled to average 1 over the windows."""
    per_speaker = speaker_weights(clips)
    names = np.array([c.speaker or str(c.path) for c in clips], dtype=object)[window_clip]
    unique, inverse, windows = np.unique(names, return_inverse=True, return_counts=True)
    w = np.array([per_speaker[n] for n in unique])[inverse] / windows[inverse]
    return (w / w.mean()).astype(np.float32)

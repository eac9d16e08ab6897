"""Training weights that keep any one corpus family, language, gender or talkative speaker from dominating.

Every training speaker gets the same total weight, spread over its windows; within each group of
speakers (a corpus and language, e.g. Common Voice Kabyle) women and men then weigh the same. A group
with one gender only is balanced within its corpus instead, and a corpus with one gender only within
all the training data. Groups keep weight in proportion to their speakers, so a language with two
speakers does not count as much as one with two hundred. No speaker weighs more than ``MAX_WEIGHT``
times the average of its family: one woman among 30 men in a language would otherwise outweigh a
whole corpus.

Then each family of corpora (``families.py``: Common Voice, LibriSpeech, ...) gets a share in
proportion to the square root of its speakers, half of it to each gender. In proportion to speakers
Common Voice would hold 82% of the weight (its 1,300 speakers on their own phones and laptops) and
clean read or studio speech about 11%; the model then heard clean women too seldom to be sure of them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from .datasets import GENDERS, Clip
from .families import family_of

MAX_WEIGHT = 4.0
"""Largest weight of one speaker within its family, relative to the family's average."""


def group_of(clip: Clip) -> tuple[str, str]:
    """(corpus, language) of a clip; the language is '' when the corpus does not say."""
    return clip.corpus, dict(clip.attributes).get("lang", "")


def family_key(clip: Clip) -> str:
    """The clip's corpus family; a corpus outside ``FAMILIES`` (your own data) is its own family."""
    return family_of(clip.corpus) or clip.corpus


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
    # Cap within each family, then give each family its share, split evenly between its genders.
    families: dict[str, list[str]] = defaultdict(list)
    for name, clip in speakers.items():
        families[family_key(clip)].append(name)
    for names in families.values():
        mean = float(np.mean([weights[n] for n in names]))
        for n in names:
            weights[n] = min(weights[n] / mean, MAX_WEIGHT)
        share = np.sqrt(len(names))
        by_gender = Counter()
        for n in names:
            by_gender[speakers[n].gender] += weights[n]
        for n in names:
            weights[n] *= share / (len(by_gender) * by_gender[speakers[n].gender])
    mean = float(np.mean(list(weights.values())))
    return {name: w / mean for name, w in weights.items()}


def window_weights(clips: Sequence[Clip], window_clip: np.ndarray) -> np.ndarray:
    """Per-window weights for windows cut from ``clips`` (``window_clip`` indexes them): the speaker's
    weight shared evenly by its windows, scaled to average 1 over the windows."""
    per_speaker = speaker_weights(clips)
    names = np.array([c.speaker or str(c.path) for c in clips], dtype=object)[window_clip]
    unique, inverse, windows = np.unique(names, return_inverse=True, return_counts=True)
    w = np.array([per_speaker[n] for n in unique])[inverse] / windows[inverse]
    return (w / w.mean()).astype(np.float32)

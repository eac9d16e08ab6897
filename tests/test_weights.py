"""Training weights: no family of corpora, language, gender or talkative speaker dominates."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from voicegender_training.datasets import Clip
from voicegender_training.weights import speaker_weights, window_weights


def clips_of(corpus: str, lang: str, women: int, men: int, tag: str = "") -> list[Clip]:
    return [
        Clip(
            Path(f"{corpus}-{lang}-{tag}{i}.wav"),
            gender,
            f"{corpus}-{lang}-{tag}{i}",
            corpus,
            3.0,
            (("lang", lang),),
        )
        for i, gender in enumerate(["female"] * women + ["male"] * men)
    ]


def totals(clips: list[Clip], weights: dict[str, float], key) -> dict:
    out: dict = defaultdict(float)
    for c in {c.speaker: c for c in clips}.values():
        out[key(c)] += weights[c.speaker]
    return out


def test_families_weigh_as_the_square_root_of_their_speakers_half_to_each_gender() -> None:
    # Common Voice: 400 speakers, 3:1 male, in two languages; LibriSpeech: 100 speakers, balanced.
    clips = (
        clips_of("cv61-multilingual", "kab", 50, 250)
        + clips_of("cv61-multilingual", "de", 25, 75)
        + clips_of("librispeech", "", 50, 50)
    )
    w = speaker_weights(clips)
    assert np.mean(list(w.values())) == pytest.approx(1.0)
    by_family_gender = totals(clips, w, lambda c: (c.corpus, c.gender))
    for corpus in ("cv61-multilingual", "librispeech"):
        assert by_family_gender[(corpus, "female")] == pytest.approx(by_family_gender[(corpus, "male")])
    cv = by_family_gender[("cv61-multilingual", "female")] * 2
    libri = by_family_gender[("librispeech", "female")] * 2
    assert cv / libri == pytest.approx(np.sqrt(400 / 100))


def test_a_lone_woman_among_many_men_is_capped_not_a_whole_corpus() -> None:
    clips = clips_of("cv61-multilingual", "ab", 1, 30) + clips_of("cv61-multilingual", "de", 30, 30, "b")
    w = speaker_weights(clips)
    women = sorted(w[c.speaker] for c in clips if c.gender == "female")
    # Uncapped, balancing "ab" alone would give her 30 times a German woman's weight.
    assert women[-1] / women[0] <= 4.0 + 1e-9


def test_every_speaker_weighs_the_same_however_many_windows_they_have() -> None:
    clips = clips_of("librispeech", "", 2, 2)
    window_clip = np.array([0] * 10 + [1] * 2 + [2] * 5 + [3] * 1)
    w = window_weights(clips, window_clip)
    assert w.mean() == pytest.approx(1.0)
    per_speaker = [w[window_clip == i].sum() for i in range(4)]
    assert per_speaker == pytest.approx([per_speaker[0]] * 4)


def test_your_own_corpus_is_its_own_family() -> None:
    clips = clips_of("librispeech", "", 8, 8) + clips_of("my-recordings", "", 1, 3)
    w = speaker_weights(clips)
    mine = totals(clips, w, lambda c: (c.corpus, c.gender))
    assert mine[("my-recordings", "female")] == pytest.approx(mine[("my-recordings", "male")])
    assert (mine[("librispeech", "female")] * 2) / (mine[("my-recordings", "male")] * 2) == pytest.approx(
        np.sqrt(16 / 4)
    )

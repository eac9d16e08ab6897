"""Speaker-disjoint, balanced, reproducible splits; caps; clip-level fallback; k-fold folds."""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path

import pytest

from voicegender.errors import VoicegenderError
from voicegender_training.datasets import Clip, read_librispeech
from voicegender_training.splits import (
    Split,
    SplitSettings,
    cap_speakers,
    gender_weights,
    kfold_splits,
    nested_speakers,
    speaker_folds,
    split_by_speaker,
)


def _corpus(name: str, n_female: int, n_male: int, seed: int = 0) -> list[Clip]:
    """Speakers with 1-12 clips of 1-20 s each, so some speakers talk far more than others."""
    rng = random.Random(f"{name}{seed}")
    clips = []
    for gender, n in (("female", n_female), ("male", n_male)):
        for s in range(n):
            speaker = f"{name}_{gender[0]}{s}"
            for c in range(rng.randint(1, 12)):
                path = Path(f"/data/{name}/{speaker}/{c}.wav")
                clips.append(Clip(path, gender, speaker, name, round(rng.uniform(1.0, 20.0), 2)))
    return clips


def _speakers(clips, gender: str | None = None) -> set[str]:
    return {c.speaker for c in clips if gender is None or c.gender == gender}


def _sides(split: Split) -> dict[str, tuple[Clip, ...]]:
    return {"train": split.train, "validation": split.validation, "test": split.test}


def _key(split: Split) -> tuple[frozenset[Path], ...]:
    return tuple(frozenset(c.path for c in side) for side in _sides(split).values())


CLIPS = _corpus("alpha", 40, 40) + _corpus("beta", 12, 30)


def test_no_speaker_on_two_sides_and_nothing_lost() -> None:
    split = split_by_speaker(CLIPS, SplitSettings(seed=3))
    train, validation, test = (_speakers(s) for s in _sides(split).values())
    assert not (train & validation) and not (train & test) and not (validation & test)
    assert sorted(c.path for s in _sides(split).values() for c in s) == sorted(c.path for c in CLIPS)
    assert split.dropped == 0 and split.clip_level == 0 and split.warnings == ()


def test_same_seed_same_split_whatever_the_input_order() -> None:
    shuffled = CLIPS[:]
    random.Random(9).shuffle(shuffled)
    assert _key(split_by_speaker(CLIPS, SplitSettings(seed=5))) == _key(
        split_by_speaker(shuffled, SplitSettings(seed=5))
    )


def test_different_seed_different_split() -> None:
    assert _key(split_by_speaker(CLIPS, SplitSettings(seed=1))) != _key(
        split_by_speaker(CLIPS, SplitSettings(seed=2))
    )


def test_adding_a_corpus_leaves_the_others_split_alone() -> None:
    alone = split_by_speaker(_corpus("alpha", 40, 40), SplitSettings(seed=4))
    together = split_by_speaker(CLIPS, SplitSettings(seed=4))
    for side_alone, side_together in zip(_sides(alone).values(), _sides(together).values(), strict=True):
        assert _speakers(side_alone) == {c.speaker for c in side_together if c.corpus == "alpha"}


def test_evaluation_sides_are_balanced_per_corpus() -> None:
    split = split_by_speaker(CLIPS, SplitSettings(validation_fraction=0.2, test_fraction=0.25, seed=0))
    for corpus, smaller in (("alpha", 40), ("beta", 12)):
        for side, fraction in ((split.validation, 0.2), (split.test, 0.25)):
            own = [c for c in side if c.corpus == corpus]
            n = round(fraction * smaller + 1e-9)
            assert len(_speakers(own, "female")) == len(_speakers(own, "male")) == n
    # A balanced corpus leaves a balanced train set.
    alpha_train = [c for c in split.train if c.corpus == "alpha"]
    assert abs(len(_speakers(alpha_train, "female")) - len(_speakers(alpha_train, "male"))) <= 1


def test_one_gender_corpus_goes_to_train() -> None:
    clips = CLIPS + _corpus("gamma", 0, 5)
    split = split_by_speaker(clips, SplitSettings(seed=0))
    assert {c.corpus for c in split.validation + split.test} == {"alpha", "beta"}
    assert len(_speakers([c for c in split.train if c.corpus == "gamma"])) == 5


def test_balance_train_drops_larger_gender_speakers() -> None:
    split = split_by_speaker(CLIPS, SplitSettings(seed=0, balance_train=True))
    assert len(_speakers(split.train, "female")) == len(_speakers(split.train, "male"))
    unbalanced = split_by_speaker(CLIPS, SplitSettings(seed=0))
    assert _speakers(split.train) < _speakers(unbalanced.train)
    assert split.dropped == len(unbalanced.train) - len(split.train) > 0
    assert _key(split)[1:] == _key(unbalanced)[1:]  # validation and test untouched


def test_gender_weights_equalise_totals() -> None:
    train = split_by_speaker(CLIPS, SplitSettings(seed=0)).train
    for by, amount in (("clips", lambda c: 1.0), ("seconds", lambda c: c.duration)):
        weights = gender_weights(train, by)
        totals = Counter()
        for clip in train:
            totals[clip.gender] += weights[clip.gender] * amount(clip)
        assert totals["female"] == pytest.approx(totals["male"])
        assert sum(totals.values()) == pytest.approx(sum(amount(c) for c in train))  # mean weight 1
    with pytest.raises(VoicegenderError, match="no female"):
        gender_weights(_corpus("x", 0, 3))


def test_caps_are_respected_and_keep_every_speaker() -> None:
    capped = cap_speakers(CLIPS, max_clips=3, max_seconds=25.0, seed=0)
    assert _speakers(capped) == _speakers(CLIPS)
    by_speaker: dict[str, list[Clip]] = {}
    for clip in capped:
        by_speaker.setdefault(clip.speaker, []).append(clip)
    for speaker, own in by_speaker.items():
        assert len(own) <= 3
        if len(own) > 1:
            assert sum(c.duration for c in own) <= 25.0
        else:  # a single clip may exceed the cap only if every clip of that speaker does
            originals = [c for c in CLIPS if c.speaker == speaker]
            assert own[0].duration <= 25.0 or own[0].duration == min(c.duration for c in originals)
    assert set(capped) <= set(CLIPS)
    assert len(capped) < len(CLIPS)
    assert cap_speakers(CLIPS, max_clips=3, max_seconds=25.0, seed=0) == capped
    assert cap_speakers(CLIPS, max_clips=3, max_seconds=25.0, seed=1) != capped


def test_seconds_cap_smaller_than_every_clip_keeps_the_shortest() -> None:
    clips = [Clip(Path(f"/d/{i}.wav"), "male", "s", "c", d) for i, d in enumerate((9.0, 4.0, 7.0))]
    assert cap_speakers(clips, max_seconds=2.0) == [clips[1]]


def test_caps_in_split_settings() -> None:
    split = split_by_speaker(CLIPS, SplitSettings(seed=0, max_clips_per_speaker=2))
    per_speaker = Counter(c.speaker for s in _sides(split).values() for c in s)
    assert max(per_speaker.values()) == 2
    assert split.dropped == len(CLIPS) - sum(per_speaker.values()) > 0


def test_seconds_cap_needs_durations() -> None:
    clips = [Clip(Path("/d/a.wav"), "male", "s", "c", None)]
    with pytest.raises(VoicegenderError, match="duration unknown"):
        split_by_speaker(clips, SplitSettings(max_seconds_per_speaker=10))


def test_speakerless_clips_are_split_by_clip_loudly(caplog) -> None:
    speakerless = [
        Clip(Path(f"/k/{g}{i}.mp3"), g, None, "kaggle", 3.0) for g in ("female", "male") for i in range(20)
    ]
    with caplog.at_level(logging.WARNING):
        split = split_by_speaker(CLIPS + speakerless, SplitSettings(seed=0, test_fraction=0.2))
    assert split.clip_level == 40
    assert any("BY CLIP" in w for w in split.warnings)
    assert any("BY CLIP" in r.getMessage() for r in caplog.records)
    test_kaggle = [c for c in split.test if c.corpus == "kaggle"]
    assert Counter(c.gender for c in test_kaggle) == {"female": 4, "male": 4}
    assert sum(c.corpus == "kaggle" for s in _sides(split).values() for c in s) == 40
    # The speakers that have ids are still split by speaker.
    named = [[c for c in s if c.speaker is not None] for s in _sides(split).values()]
    assert not (_speakers(named[0]) & _speakers(named[2]))


def test_no_warning_when_every_clip_has_a_speaker(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        split_by_speaker(CLIPS)
    assert not caplog.records


def test_speaker_with_both_genders_is_an_error() -> None:
    clips = [*CLIPS, Clip(Path("/x.wav"), "male", "alpha_f0", "other", 2.0)]
    with pytest.raises(VoicegenderError, match="alpha_f0"):
        split_by_speaker(clips)


def test_bad_settings() -> None:
    for kwargs in (
        {"test_fraction": 0.6, "validation_fraction": 0.5},
        {"test_fraction": -0.1},
        {"max_clips_per_speaker": 0},
    ):
        with pytest.raises(VoicegenderError, match="split settings"):
            SplitSettings(**kwargs)


def test_speaker_folds_partition_balanced() -> None:
    # Small corpora whose speaker counts don't divide by k test that fold sizes stay even overall.
    clips = CLIPS + _corpus("gamma", 3, 3) + _corpus("delta", 2, 2)
    folds, warnings = speaker_folds(clips, 5, SplitSettings(seed=2))
    assert warnings == ()
    assert sorted(c.path for f in folds for c in f) == sorted(c.path for c in clips)
    speaker_sets = [_speakers(f) for f in folds]
    for i in range(5):
        for j in range(i + 1, 5):
            assert not speaker_sets[i] & speaker_sets[j]
    for corpus in ("alpha", "beta", "gamma", "delta"):
        for gender in ("female", "male"):
            counts = [len(_speakers([c for c in f if c.corpus == corpus], gender)) for f in folds]
            assert max(counts) - min(counts) <= 1
    # alpha has 40 + 40 speakers: every fold gets 8 of each.
    for fold in folds:
        alpha = [c for c in fold if c.corpus == "alpha"]
        assert len(_speakers(alpha, "female")) == len(_speakers(alpha, "male")) == 8
    totals = [len(s) for s in speaker_sets]
    assert max(totals) - min(totals) <= 1
    again, _ = speaker_folds(list(reversed(clips)), 5, SplitSettings(seed=2))
    assert [set(f) for f in again] == [set(f) for f in folds]
    other, _ = speaker_folds(clips, 5, SplitSettings(seed=3))
    assert [set(f) for f in other] != [set(f) for f in folds]


def test_kfold_splits_test_every_speaker_once() -> None:
    splits = kfold_splits(CLIPS, 4, SplitSettings(seed=1))
    assert len(splits) == 4
    tested = Counter(s for split in splits for s in _speakers(split.test))
    assert set(tested) == _speakers(CLIPS) and set(tested.values()) == {1}
    for split in splits:
        train, validation, test = (_speakers(s) for s in _sides(split).values())
        assert not (train & validation) and not (train & test) and not (validation & test)
        assert len(split.train) + len(split.validation) + len(split.test) == len(CLIPS)
    balanced = kfold_splits(CLIPS, 4, SplitSettings(seed=1, balance_train=True))
    for split in balanced:
        assert len(_speakers(split.train, "female")) == len(_speakers(split.train, "male"))
    with pytest.raises(VoicegenderError, match="k must be >= 3"):
        kfold_splits(CLIPS, 2)


def test_real_librispeech_split(data_dir: Path) -> None:
    clips, _ = read_librispeech(data_dir / "LibriSpeech")
    split = split_by_speaker(clips, SplitSettings(seed=0))
    # 127 female and 127 male speakers: round(0.15 * 127) = 19 of each in validation and in test.
    for side, n in ((split.test, 19), (split.validation, 19), (split.train, 89)):
        assert len(_speakers(side, "female")) == len(_speakers(side, "male")) == n


def test_nested_speakers_keep_a_share_of_each_corpus_and_gender_and_grow_by_adding():
    clips = _corpus("a", 40, 120) + _corpus("b", 3, 9)
    subsets = {f: nested_speakers(clips, f, seed=1) for f in (0.1, 0.25, 0.5, 1.0)}
    assert subsets[0.1] <= subsets[0.25] <= subsets[0.5] <= subsets[1.0] == _speakers(clips)
    quarter = subsets[0.25]
    speaker_clips = {c.speaker: c for c in clips if c.speaker in quarter}.values()
    counts = Counter((c.corpus, c.gender) for c in speaker_clips)
    assert counts == {("a", "female"): 10, ("a", "male"): 30, ("b", "female"): 1, ("b", "male"): 3}
    assert len(nested_speakers(clips, 0.005, seed=1)) == 4  # at least one of each corpus and gender
    assert nested_speakers(clips, 0.25, seed=2) != quarter  # the seed picks the speakers
    pooled = nested_speakers(clips, 0.25, seed=1, group=lambda c: "all")  # one group: 25% of each gender
    assert (len(pooled & _speakers(clips, "female")), len(pooled & _speakers(clips, "male"))) == (11, 33)

"""Speaker-disjoint, gender-balanced, reproducible train/validation/test splits and k-fold folds.

A speaker's clips all go to one side, so test scores measure voices the model has never heard. Splits
are stratified per corpus: validation and test take the same number of female and male speakers from
each corpus (``round(fraction * min(n_female, n_male))``), the rest train. So evaluation sets are
balanced and no corpus ends up in them as one gender only (a model could learn "this recording
setup means male"); a corpus with one gender only goes entirely to train. Each (corpus, gender)
stratum is shuffled with its own seed derived from ``seed``, so adding a corpus leaves the others'
splits unchanged, and input order never matters.

Clips without a speaker id (Kaggle Common Voice) can only be split by clip: that is done, loudly.
"""

from __future__ import annotations

import hashlib
import logging
import math
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from voicegender.errors import VoicegenderError

from .datasets import GENDERS, Clip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitSettings:
    """How clips are divided into train / validation / test."""

    validation_fraction: float = 0.15
    """Share of each corpus's smaller gender (in speakers) given to validation, per gender."""
    test_fraction: float = 0.15
    """Share of each corpus's smaller gender (in speakers) given to test, per gender."""
    seed: int = 0
    """Seed for every random choice; the same seed and clips give the same split."""
    max_clips_per_speaker: int | None = None
    """Keep at most this many clips per speaker (a random choice), so talkative speakers don't dominate."""
    max_seconds_per_speaker: float | None = None
    """Keep at most this much audio per speaker; a speaker whose every clip is longer keeps its shortest."""
    balance_train: bool = False
    """Drop random speakers of the larger gender from train until both genders have as many speakers
    (the alternative is to keep them all and weight by ``gender_weights``)."""

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.validation_fraction < 1 or not 0 <= self.test_fraction < 1:
            problems.append("fractions must be in [0, 1)")
        if self.validation_fraction + self.test_fraction >= 1:
            problems.append("validation_fraction + test_fraction must be < 1")
        if self.max_clips_per_speaker is not None and self.max_clips_per_speaker < 1:
            problems.append("max_clips_per_speaker must be >= 1")
        if self.max_seconds_per_speaker is not None and self.max_seconds_per_speaker <= 0:
            problems.append("max_seconds_per_speaker must be > 0")
        if problems:
            raise VoicegenderError(f"split settings: {'; '.join(problems)}")


@dataclass(frozen=True)
class Split:
    """Clips per side. Speaker-disjoint except clips without a speaker id (counted in ``clip_level``)."""

    train: tuple[Clip, ...]
    """Training clips."""
    validation: tuple[Clip, ...]
    """Validation clips (model selection, thresholds)."""
    test: tuple[Clip, ...]
    """Held-out test clips."""
    clip_level: int
    """Clips that had no speaker id and were split by clip."""
    dropped: int
    """Clips left out by per-speaker caps or by ``balance_train``."""
    warnings: tuple[str, ...]
    """Problems the user must see (also logged as warnings)."""


@dataclass(frozen=True)
class _Unit:
    """What is assigned to one side as a whole: a speaker, or one clip without a speaker."""

    key: str
    gender: str
    corpus: str
    clips: tuple[Clip, ...]


def split_by_speaker(clips: Iterable[Clip], settings: SplitSettings = SplitSettings()) -> Split:
    """Train / validation / test with no speaker on two sides; see the module docstring."""
    units, dropped, warnings = _units(clips, settings)
    sides: dict[str, list[_Unit]] = {"train": [], "validation": [], "test": []}
    for by_gender in _strata(units, settings.seed).values():
        smaller = min(len(by_gender[g]) for g in GENDERS)
        n_test = _round_half_up(settings.test_fraction * smaller)
        n_validation = _round_half_up(settings.validation_fraction * smaller)
        for gender in GENDERS:
            shuffled = by_gender[gender]
            sides["test"] += shuffled[:n_test]
            sides["validation"] += shuffled[n_test : n_test + n_validation]
            sides["train"] += shuffled[n_test + n_validation :]
    if settings.balance_train:
        sides["train"], balance_dropped = _balance(sides["train"], settings.seed)
        dropped += balance_dropped
    return _make_split(sides["train"], sides["validation"], sides["test"], units, dropped, warnings)


def speaker_folds(
    clips: Iterable[Clip], k: int, settings: SplitSettings = SplitSettings()
) -> tuple[list[list[Clip]], tuple[str, ...]]:
    """``k`` speaker-disjoint folds, each with as even a share of every (corpus, gender) as possible.

    Within a corpus both genders are dealt to the folds from the same starting fold, so with equal
    female and male speakers every fold is balanced; otherwise fold counts differ by at most one per
    gender and corpus. Caps in ``settings`` apply; fractions and ``balance_train`` don't.
    Returns (folds, warnings).
    """
    if k < 2:
        raise VoicegenderError(f"k-fold: k must be >= 2, got {k}")
    units, _, warnings = _units(clips, settings)
    return [_flatten(fold) for fold in _deal(units, k, settings.seed)], warnings


def kfold_splits(clips: Iterable[Clip], k: int, settings: SplitSettings = SplitSettings()) -> list[Split]:
    """``k`` splits for cross-validation: split ``i`` tests on fold ``i``, validates on fold ``i+1``
    and trains on the rest, so every speaker is tested exactly once. ``balance_train`` applies."""
    if k < 3:
        raise VoicegenderError(f"k-fold: k must be >= 3 (a test and a validation fold), got {k}")
    units, dropped, warnings = _units(clips, settings)
    folds = _deal(units, k, settings.seed)
    splits = []
    for i in range(k):
        train = [u for j, fold in enumerate(folds) if j not in (i, (i + 1) % k) for u in fold]
        fold_dropped = dropped
        if settings.balance_train:
            train, balance_dropped = _balance(train, settings.seed + i)
            fold_dropped += balance_dropped
        splits.append(_make_split(train, folds[(i + 1) % k], folds[i], units, fold_dropped, warnings))
    return splits


def gender_weights(clips: Iterable[Clip], by: str = "clips") -> dict[str, float]:
    """Per-gender weights that give both genders the same total weight, averaging 1 per clip or second.

    ``by`` is ``'clips'`` (count clips) or ``'seconds'`` (needs durations).
    """
    clips = list(clips)
    if by == "clips":
        totals = {g: float(sum(c.gender == g for c in clips)) for g in GENDERS}
    elif by == "seconds":
        unknown = next((c for c in clips if c.duration is None), None)
        if unknown is not None:
            raise VoicegenderError(f"{unknown.path}: duration unknown, can't weight by seconds")
        totals = {g: sum(c.duration or 0.0 for c in clips if c.gender == g) for g in GENDERS}
    else:
        raise VoicegenderError(f"gender weights: by must be 'clips' or 'seconds', got {by!r}")
    if min(totals.values()) <= 0:
        missing = [g for g, t in totals.items() if t <= 0]
        raise VoicegenderError(f"gender weights: no {' or '.join(missing)} clips to balance against")
    total = sum(totals.values())
    return {g: total / (len(GENDERS) * t) for g, t in totals.items()}


def cap_speakers(
    clips: Iterable[Clip],
    max_clips: int | None = None,
    max_seconds: float | None = None,
    seed: int = 0,
) -> list[Clip]:
    """Keeps at most ``max_clips`` and ``max_seconds`` of audio per speaker, choosing clips at random.

    Clips are taken in a random order while they fit; a speaker whose every clip is longer than
    ``max_seconds`` keeps only its shortest one, so caps never remove a speaker. Clips without a
    speaker pass through.
    """
    by_speaker: dict[str, list[Clip]] = defaultdict(list)
    kept = []
    for clip in clips:
        if clip.speaker is None:
            kept.append(clip)
        else:
            by_speaker[clip.speaker].append(clip)
    for speaker in sorted(by_speaker):
        own = sorted(by_speaker[speaker], key=lambda c: str(c.path))
        if max_seconds is not None:
            unknown = next((c for c in own if c.duration is None), None)
            if unknown is not None:
                raise VoicegenderError(
                    f"{unknown.path}: duration unknown, can't apply a per-speaker seconds cap"
                )
        order = _rng(seed, "cap", speaker).permutation(len(own))
        chosen: list[Clip] = []
        seconds = 0.0
        for index in order:
            clip = own[index]
            if max_clips is not None and len(chosen) >= max_clips:
                break
            duration = clip.duration or 0.0
            if max_seconds is not None and seconds + duration > max_seconds:
                continue
            chosen.append(clip)
            seconds += duration
        if not chosen:
            chosen = [min(own, key=lambda c: c.duration or 0.0)]
        kept += chosen
    return kept


# --- internals ---------------------------------------------------------------------------------------


def nested_speakers(
    clips: Iterable[Clip], fraction: float, seed: int, group: Callable[[Clip], str] = lambda c: c.corpus
) -> set[str]:
    """Speakers (``Clip.speaker``, or the path of a speakerless clip) making up ``fraction`` of each
    (group, gender), at least one each. The order is seeded and does not depend on ``fraction``, so
    the speakers of a smaller fraction are always among those of a larger one."""
    groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    for c in clips:
        groups[(group(c), c.gender)].add(c.speaker or str(c.path))
    keep: set[str] = set()
    for speakers in groups.values():
        order = sorted(speakers, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
        keep.update(order[: max(1, math.ceil(fraction * len(order)))])
    return keep


def _units(clips: Iterable[Clip], settings: SplitSettings) -> tuple[list[_Unit], int, tuple[str, ...]]:
    """Speakers (and speakerless clips) as units to assign, after caps -> (units, dropped, warnings)."""
    clips = list(clips)
    _check_speaker_genders(clips)
    capped = clips
    if settings.max_clips_per_speaker is not None or settings.max_seconds_per_speaker is not None:
        capped = cap_speakers(
            clips, settings.max_clips_per_speaker, settings.max_seconds_per_speaker, settings.seed
        )
    by_speaker: dict[str, list[Clip]] = defaultdict(list)
    units = []
    for clip in capped:
        if clip.speaker is None:
            units.append(_Unit(f"clip:{clip.path}", clip.gender, clip.corpus, (clip,)))
        else:
            by_speaker[clip.speaker].append(clip)
    for speaker, own in by_speaker.items():
        own.sort(key=lambda c: str(c.path))
        units.append(_Unit(f"speaker:{speaker}", own[0].gender, min(c.corpus for c in own), tuple(own)))
    warnings = []
    speakerless = [c for c in capped if c.speaker is None]
    if speakerless:
        corpora = ", ".join(sorted({c.corpus for c in speakerless}))
        message = (
            f"{len(speakerless)} clips ({corpora}) have no speaker id: they are split BY CLIP, so one voice "
            "can be in train and test and their test scores are optimistic"
        )
        log.warning(message)
        warnings.append(message)
    return units, len(clips) - len(capped), tuple(warnings)


def _check_speaker_genders(clips: Sequence[Clip]) -> None:
    genders: dict[str, set[str]] = defaultdict(set)
    corpora: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        if clip.speaker is not None:
            genders[clip.speaker].add(clip.gender)
            corpora[clip.speaker].add(clip.corpus)
    for speaker, found in sorted(genders.items()):
        if len(found) > 1:
            raise VoicegenderError(
                f"speaker {speaker} has clips labelled both male and female "
                f"(corpora: {', '.join(sorted(corpora[speaker]))}); fix the labels or the speaker ids"
            )


def _strata(units: list[_Unit], seed: int) -> dict[tuple[bool, str], dict[str, list[_Unit]]]:
    """Units grouped by (is clip-level, corpus) then gender, each list shuffled with its own seed."""
    strata: dict[tuple[bool, str], dict[str, list[_Unit]]] = defaultdict(lambda: {g: [] for g in GENDERS})
    for unit in units:
        strata[(unit.key.startswith("clip:"), unit.corpus)][unit.gender].append(unit)
    for (clip_level, corpus), by_gender in strata.items():
        for gender, members in by_gender.items():
            members.sort(key=lambda u: u.key)
            order = _rng(seed, "stratum", str(clip_level), corpus, gender).permutation(len(members))
            by_gender[gender] = [members[i] for i in order]
    return dict(sorted(strata.items()))


def _deal(units: list[_Unit], k: int, seed: int) -> list[list[_Unit]]:
    folds: list[list[_Unit]] = [[] for _ in range(k)]
    offset = 0
    for by_gender in _strata(units, seed).values():
        for members in by_gender.values():
            for i, unit in enumerate(members):
                folds[(offset + i) % k].append(unit)
        # The next corpus starts where this one's larger gender ended, so fold sizes stay even.
        offset = (offset + max(len(m) for m in by_gender.values())) % k
    return folds


def _balance(train: list[_Unit], seed: int) -> tuple[list[_Unit], int]:
    """Drops random units of the larger gender so both genders have as many. Returns (kept, clips dropped)."""
    by_gender = {g: sorted((u for u in train if u.gender == g), key=lambda u: u.key) for g in GENDERS}
    keep = min(len(v) for v in by_gender.values())
    kept: list[_Unit] = []
    for gender, members in by_gender.items():
        order = _rng(seed, "balance", gender).permutation(len(members))
        kept += [members[i] for i in sorted(order[:keep])]
    dropped = sum(len(u.clips) for u in train) - sum(len(u.clips) for u in kept)
    return kept, dropped


def _make_split(
    train: list[_Unit],
    validation: list[_Unit],
    test: list[_Unit],
    units: list[_Unit],
    dropped: int,
    warnings: tuple[str, ...],
) -> Split:
    return Split(
        train=tuple(_flatten(train)),
        validation=tuple(_flatten(validation)),
        test=tuple(_flatten(test)),
        clip_level=sum(1 for u in units if u.key.startswith("clip:")),
        dropped=dropped,
        warnings=warnings,
    )


def _flatten(units: Iterable[_Unit]) -> list[Clip]:
    return [clip for unit in units for clip in unit.clips]


def _rng(seed: int, *parts: str) -> np.random.Generator:
    """A generator for one named purpose, independent of every other purpose's draws."""
    return np.random.default_rng([seed % 2**64, *(zlib.crc32(p.encode()) for p in parts)])


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)

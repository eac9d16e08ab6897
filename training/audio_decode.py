"""Decode any corpus file to float32 mono 16 kHz, and load many files without one bad file stopping a run.

Files are read by the device's reader (``voicegender.audiofile``): WAV by its own parser,
FLAC/Ogg/MP3 by soundfile (libsndfile), anything else by an ``ffmpeg`` subprocess at the file's own
rate, channels averaged. Resampling is always done by the device's resampler, so training audio
goes through the same decoders and the same filter as audio on the Pi.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from voicegender.audiofile import DECODERS, read_audio
from voicegender.errors import VoicegenderError
from voicegender.resample import resample

from .datasets import Clip

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000

Item = TypeVar("Item", Clip, Path, str)


def load_audio(path: str | Path, *, decoders: Sequence[str] = DECODERS) -> np.ndarray:
    """The file as float32 mono at 16 kHz (channels averaged). VoicegenderError if it can't be decoded.

    ``decoders`` limits the decoders tried (see ``voicegender.audiofile.DECODERS``).
    """
    decoded = read_audio(path, decoders)
    return _to_16k(decoded.samples, decoded.sample_rate)


def _to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate != SAMPLE_RATE:
        audio = resample(audio, rate, SAMPLE_RATE)
    return np.ascontiguousarray(audio, dtype=np.float32)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# --- Many files -------------------------------------------------------------------------------------


@dataclass
class LoadResult(Generic[Item]):
    """Decoded audio for the items that loaded, and (path, reason) for each that didn't."""

    loaded: list[tuple[Item, np.ndarray]] = field(default_factory=list)
    """(item, float32 mono 16 kHz audio) in input order."""
    rejects: list[tuple[Path, str]] = field(default_factory=list)
    """(path, reason) for each item that was dropped."""

    def reject_counts(self) -> Counter[str]:
        """Rejects by kind of reason ('too short', 'file is empty', 'cannot decode it'...)."""
        return Counter(_reason_kind(reason) for _, reason in self.rejects)


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0].split(":")[0]


def iter_audio(
    items: Iterable[Item],
    *,
    min_seconds: float = 0.0,
    on_reject: Callable[[Path, str], None] | None = None,
    progress: bool = False,
) -> Iterator[tuple[Item, np.ndarray]]:
    """Yields (item, audio) for each clip/path that decodes to at least ``min_seconds`` of finite audio.

    Items that fail are passed to ``on_reject(path, reason)`` (and logged at INFO) and skipped: one bad
    file never stops a run. Streaming, so a whole corpus need not fit in memory.
    """
    items = list(items)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="decoding", unit="file")
    min_samples = int(np.ceil(min_seconds * SAMPLE_RATE))
    for item in items:
        path = item.path if isinstance(item, Clip) else Path(item)
        try:
            audio = load_audio(path)
            reason = _problem(audio, min_samples, min_seconds)
        except VoicegenderError as exc:
            # The message starts with the path; the reject list carries the path separately.
            reason = str(exc).removeprefix(f"{path}: ")
        except OSError as exc:  # e.g. permission denied, or the file vanished mid-run
            reason = f"can't read file ({_one_line(exc)})"
        if reason is None:
            yield item, audio
            continue
        log.info("skipping %s: %s", path, reason)
        if on_reject is not None:
            on_reject(path, reason)


def _problem(audio: np.ndarray, min_samples: int, min_seconds: float) -> str | None:
    # Empty and non-finite audio never get here: the reader refuses them, naming the file.
    if audio.size < min_samples:
        return f"too short: {audio.size / SAMPLE_RATE:.2f} s < {min_seconds:g} s"
    return None


def load_batch(
    items: Iterable[Item], *, min_seconds: float = 0.0, progress: bool = False
) -> LoadResult[Item]:
    """Loads every item that can be used; see ``iter_audio``. Logs one warning summarising rejects."""
    result: LoadResult[Item] = LoadResult()
    result.loaded = list(
        iter_audio(
            items,
            min_seconds=min_seconds,
            on_reject=lambda path, reason: result.rejects.append((path, reason)),
            progress=progress,
        )
    )
    if result.rejects:
        counts = ", ".join(f"{k}: {n}" for k, n in sorted(result.reject_counts().items()))
        log.warning(
            "skipped %d of %d files (%s)",
            len(result.rejects),
            len(result.loaded) + len(result.rejects),
            counts,
        )
    return result

"""Decode any corpus file to float32 mono 16 kHz, and load many files without one bad file stopping a run.

soundfile (libsndfile) reads WAV/FLAC/OGG and, from libsndfile 1.1 on, MP3. Anything it can't read is
handed to an ``ffmpeg`` subprocess, which decodes at the file's own rate: resampling is always done by
the device's resampler, so training audio goes through the same filter as audio on the Pi.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import soundfile

from voicegender.errors import VoicegenderError
from voicegender.resample import resample

from .datasets import Clip

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FFMPEG_TIMEOUT_S = 120.0

Item = TypeVar("Item", Clip, Path, str)


def load_audio(path: str | Path, *, use_soundfile: bool = True) -> np.ndarray:
    """The file as float32 mono at 16 kHz (channels averaged). VoicegenderError if it can't be decoded.

    ``use_soundfile=False`` goes straight to ffmpeg (what happens when libsndfile lacks a format).
    """
    path = Path(path)
    if not path.is_file():
        raise VoicegenderError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise VoicegenderError(f"{path}: empty file")
    problems = []
    if use_soundfile:
        try:
            audio, rate = _read_soundfile(path)
            return _to_16k(audio, rate)
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
            problems.append(f"soundfile: {_one_line(exc)}")
    try:
        audio, rate = _read_ffmpeg(path)
    except VoicegenderError as exc:
        problems.append(f"ffmpeg: {exc}")
        raise VoicegenderError(f"{path}: can't decode audio ({'; '.join(problems)})") from None
    return _to_16k(audio, rate)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1, dtype=np.float32), int(rate)


def _read_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Decodes with ffmpeg at the file's own rate (found with ffprobe), channels mixed to mono."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise VoicegenderError("not installed (Debian package ffmpeg)")
    probe = _run(["ffprobe", "-v", "error", "-select_streams", "a:0", *_RATE_ONLY, str(path)])
    try:
        rate = int(probe.decode().split()[0])
    except (IndexError, ValueError):
        raise VoicegenderError("no audio stream") from None
    raw = _run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", *_F32_MONO])
    return np.frombuffer(raw, dtype="<f4").astype(np.float32), rate


_RATE_ONLY = ["-show_entries", "stream=sample_rate", "-of", "default=noprint_wrappers=1:nokey=1"]
_F32_MONO = ["-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-"]


def _run(command: list[str]) -> bytes:
    try:
        done = subprocess.run(command, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise VoicegenderError(f"timed out after {FFMPEG_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise VoicegenderError(message[-1] if message else f"exit status {done.returncode}")
    return done.stdout


def _to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate <= 0:
        raise ValueError(f"bad sample rate {rate}")
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
        """Rejects by kind of reason ('too short', 'empty file', 'can't decode audio'...)."""
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
    if audio.size == 0:
        return "no audio samples"
    if not np.all(np.isfinite(audio)):
        return "non-finite samples (NaN or inf)"
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

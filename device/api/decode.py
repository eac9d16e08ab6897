"""Uploaded audio decoded in memory: the bytes go to an anonymous RAM file, never to a disk.

The upload is read by the same decoders ``voicegender classify`` reads files with (``audiofile``:
WAV by the numpy parser, FLAC / Ogg Vorbis / Ogg Opus / MP3 through libsndfile), from a
``memfd_create`` file (``/proc/self/fd/N``), so an upload gets exactly the decision the CLI gives
the same file. ffmpeg is not used: it would run as a separate process, which cannot see this
process's RAM file, and one per upload is too much for a Pi. At most ``max_seconds`` of audio is
ever decoded, so a small compressed file cannot expand into more memory than that. Error messages
name the upload as the client did, not the RAM file.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from ..audiofile import AudioFile
from ..errors import VoicegenderError

AUDIO_TYPES = (
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/vnd.wave",
    "audio/flac",
    "audio/x-flac",
    "audio/ogg",
    "audio/opus",
    "audio/mpeg",
    "audio/mp3",
    "application/octet-stream",
)
"""Content types /api/v1/classify accepts (the decoder looks at the bytes, not at the type)."""
DECODERS = ("wav", "soundfile")
"""The ``audiofile`` decoders uploads go through (not ffmpeg; see above)."""


class UploadError(VoicegenderError):
    """An upload that cannot be classified; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def media_type(content_type: str) -> str:
    """``audio/wav; charset=...`` -> ``audio/wav``."""
    return content_type.split(";", 1)[0].strip().lower()


def upload_formats() -> str:
    """What uploads may be here: WAV, and with soundfile (libsndfile) FLAC, Ogg Vorbis/Opus, MP3."""
    if importlib.util.find_spec("soundfile") is None:
        return "WAV (install soundfile for FLAC, Ogg Vorbis/Opus and MP3)"
    return "WAV, FLAC, Ogg Vorbis, Ogg Opus or MP3"


def decode_upload(body: bytes, name: str, max_seconds: float) -> tuple[np.ndarray, int]:
    """(float32 mono samples, sample rate) of an uploaded file; ``UploadError`` if it is unusable."""
    if not body:
        raise UploadError(f"{name}: the body is empty; send the audio file as the request body", 400)
    fd = os.memfd_create("voicegender-upload", os.MFD_CLOEXEC)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        ram_path = f"/proc/self/fd/{fd}"
        try:
            with AudioFile(ram_path, DECODERS) as f:
                rate = f.sample_rate
                if f.duration is not None and f.duration > max_seconds:
                    raise _too_long(name, f.duration, max_seconds)
                audio = f.read(int(max_seconds * rate) + 1)  # bounded even when the length is unknown
        except UploadError:
            raise
        except VoicegenderError as exc:
            # The decoders' "this installation reads ..." counts ffmpeg, which uploads do not use.
            text = str(exc).replace(ram_path, name).split("; this installation reads")[0]
            raise UploadError(f"{text}; uploads may be {upload_formats()}", 422) from None
    finally:
        os.close(fd)
    if audio.size == 0:
        raise UploadError(f"{name}: contains no audio (0 samples)", 422)
    if audio.size > max_seconds * rate:
        raise _too_long(name, None, max_seconds)
    return audio, rate


def _too_long(name: str, seconds: float | None, max_seconds: float) -> UploadError:
    length = f"{seconds:.1f} s of audio" if seconds is not None else f"more than {max_seconds:g} s of audio"
    return UploadError(f"{name}: {length}; at most {max_seconds:g} s per upload", 413)

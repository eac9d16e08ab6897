"""Uploaded audio decoded in memory: the bytes go to an anonymous RAM file, never to a disk.

The upload is read by the same function ``voicegender classify`` reads files with, through a
``memfd_create`` file (``/proc/self/fd/N``), so an upload gets exactly the decision the CLI gives
the same file. Error messages name the upload as the client did, not the RAM file.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import VoicegenderError
from ..wavio import read_wav

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


class UploadError(VoicegenderError):
    """An upload that cannot be classified; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def media_type(content_type: str) -> str:
    """``audio/wav; charset=...`` -> ``audio/wav``."""
    return content_type.split(";", 1)[0].strip().lower()


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
            audio, rate = read_wav(ram_path)
        except VoicegenderError as exc:
            raise UploadError(str(exc).replace(ram_path, name), 422) from None
    finally:
        os.close(fd)
    if audio.size == 0:
        raise UploadError(f"{name}: contains no audio (0 samples)", 422)
    seconds = audio.size / rate
    if seconds > max_seconds:
        raise UploadError(f"{name}: {seconds:.1f} s of audio; at most {max_seconds:g} s per upload", 413)
    return audio, rate

"""Audio files of any common format to float32 mono, read in chunks, and what to warn about them.

Three decoders, tried in this order, each only if it is there:

- ``wav``: the numpy RIFF/WAVE parser in ``wavio`` (PCM and float WAV), for files that start with
  ``RIFF``. Nothing else is imported for a WAV, so the daemon's memory and start-up stay as they were.
- ``soundfile`` (libsndfile; the ``device`` extra installs it): FLAC, Ogg Vorbis, Ogg Opus, MP3
  (libsndfile >= 1.1), AIFF, and the WAV encodings ``wavio`` refuses (A-law, mu-law, ADPCM, RF64).
- ``ffmpeg`` on PATH (Debian package ffmpeg, which brings ffprobe): everything else it decodes,
  e.g. M4A/AAC from phones, AMR, WebM. It decodes at the file's own rate and channel count;
  resampling and the downmix stay ours, as for every other input.

Every decoder reads lazily, so memory stays bounded whatever the length of the file (a paced
``run --input`` of an hour-long file holds at most about 2 s of it, not the hour): ``wavio`` reads
the bytes it needs, libsndfile decodes in fixed blocks (see ``_Soundfile``), and ffmpeg streams
raw float samples through a pipe (its stderr goes to a temporary file, so a chatty decoder cannot
block on a full pipe). Decoding
a compressed file up front would have been simpler, but an hour of 48 kHz stereo is 1.4 GB of
float32, more than a Pi 3 has.

Channels are averaged to mono. A file whose channels carry materially different sound (two
talkers on two channels, a talker and a noise track) gets one warning, from a correlation test of
the channels' 20 ms levels (see :class:`ChannelCheck`); audio below 16 kHz gets one warning that
it lacks the upper band the model uses. :meth:`AudioFile.take_warnings` hands each out once.

When no decoder can read a file the error is one line naming the file, what it looks like (FLAC,
MP3, ...), why each available decoder failed and which formats this installation reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from .errors import VoicegenderError
from .wavio import MAX_RATE, MIN_RATE, UnsupportedWav, WavReader, mix_to_mono

DECODERS = ("wav", "soundfile", "ffmpeg")
"""The decoders, in the order they are tried."""
MODEL_RATE = 16000
"""The model's sample rate: audio recorded below it lacks part of the 0-8 kHz band the model uses."""
FFPROBE_TIMEOUT_S = 30.0
"""Longest wait for ffprobe to describe a file."""
FFMPEG_STALL_S = 30.0
"""An ffmpeg that writes no audio for this long is stopped and the file reported as unreadable."""
AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".mp4", ".aac", ".aif", ".aiff", ".webm"}
    | {".mka", ".amr", ".3gp", ".wma", ".caf", ".au", ".w64", ".rf64"}
)
"""File name endings of audio files (for telling a missing file from a mistyped option)."""
INSTALL_HINT = (
    "install soundfile (`pip install soundfile`) for FLAC, Ogg Vorbis/Opus and MP3, "
    "or ffmpeg (`sudo apt install ffmpeg`) for those and M4A/AAC"
)

_PIPE_BLOCK = 1 << 20


class AudioFileError(VoicegenderError):
    """An audio file could not be read; the message names the file and the problem."""


def _one_line(exc: BaseException | str) -> str:
    """A message on one line, without a closing full stop (it goes inside a longer line)."""
    text = " ".join(str(exc).split()).rstrip(".")
    return text or type(exc).__name__


def _sniff(head: bytes) -> str | None:
    """What the first bytes of a file say it is, for messages (None: not recognised)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] in (b"RF64", b"BW64"):
        return "RF64 WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        if b"OpusHead" in head:
            return "Ogg Opus"
        return "Ogg Vorbis" if b"\x01vorbis" in head else "Ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF2):
        return "MP3"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "AAC"
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[:5] == b"#!AMR":
        return "AMR"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "WebM/Matroska"
    if head[:4] == b"\x30\x26\xb2\x75":
        return "WMA"
    return None


def _import_soundfile() -> ModuleType | None:
    """The soundfile module, or None when it (or the libsndfile library it loads) is missing."""
    try:
        import soundfile
    except (ImportError, OSError):  # OSError: the package is there but libsndfile is not
        return None
    return soundfile


def _ffmpeg_tools() -> tuple[str, str] | None:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    return (ffmpeg, ffprobe) if ffmpeg and ffprobe else None


def soundfile_formats(sf: ModuleType) -> list[str]:
    """The formats users have that this libsndfile decodes (besides WAV)."""
    formats = sf.available_formats()
    names = ["FLAC"] if "FLAC" in formats else []
    if "OGG" in formats:
        ogg = sf.available_subtypes("OGG")
        names += [f"Ogg {name.title()}" for name in ("VORBIS", "OPUS") if name in ogg]
    if "MP3" in formats:
        names.append("MP3")
    return names


def readable_formats() -> str:
    """What this installation reads: 'WAV, FLAC, Ogg Vorbis, Ogg Opus, MP3, AIFF and anything ffmpeg ...'."""
    names = ["WAV"]
    sf = _import_soundfile()
    if sf is not None:
        names += [*soundfile_formats(sf), "AIFF"]
    text = ", ".join(names)
    if _ffmpeg_tools() is not None:
        return f"{text} and anything ffmpeg decodes (M4A/AAC, WebM, AMR, ...)"
    return text if sf is not None else "WAV only"


def low_rate_warning(name: str, sample_rate: int) -> str | None:
    """The warning for audio recorded below the model's rate (None at 16 kHz and above)."""
    if sample_rate >= MODEL_RATE:
        return None
    return (
        f"{name}: {sample_rate} Hz audio lacks the {sample_rate / 2000:.3g}-{MODEL_RATE / 2000:.3g} kHz "
        "band the model uses; expect lower accuracy"
    )


# -- channels ---------------------------------------------------------------------------------------


class ChannelCheck:
    """Decides whether the channels of a recording carry materially different sound.

    Each channel's level is measured in 20 ms frames (dB). Frames within 30 dB of the loudest
    frame of the recording count as active (the talker, not the pauses between words, whose
    shared quiet would make any two channels look alike). A channel whose loudest frame is 30 dB
    below the loudest channel's is near-silent: averaging it in changes the mix by a fraction of a
    dB, and the model ignores level. The other channels differ materially when, over the active
    frames, their levels correlate below 0.5 for some pair: one talker picked up by two
    microphones, or panned, gives 0.85-1.0 (both channels rise and fall with the same syllables);
    two talkers, at once or taking turns, or a talker and a noise track, give -1 to 0.3 (measured
    in ``tests/test_audiofile.py``). The verdict is taken on the first ``decide_seconds`` of
    non-silent frames, or at the end of a shorter recording, so a file streamed in chunks and the
    same file read whole get the same answer.
    """

    FRAME_SECONDS = 0.02
    FLOOR_DB = -60.0  # frames quieter than this in every channel are not kept at all
    ACTIVE_RANGE_DB = 30.0
    MIN_CORRELATION = 0.5

    def __init__(self, sample_rate: int, channels: int, decide_seconds: float = 30.0) -> None:
        self.channels = channels
        self._frame = max(1, round(sample_rate * self.FRAME_SECONDS))
        self._decide_frames = max(2, round(decide_seconds / self.FRAME_SECONDS))
        self._carry = np.zeros((0, channels), dtype=np.float32)
        self._levels: list[np.ndarray] = []
        self._kept = 0
        self.decided = False
        """True once the verdict is in (enough frames, or ``finish`` was called)."""
        self.correlation: float | None = None
        """Lowest level correlation between two non-silent channels (None: fewer than two)."""

    @property
    def differ(self) -> bool:
        """The verdict: at least two non-silent channels whose levels do not move together."""
        return self.correlation is not None and self.correlation < self.MIN_CORRELATION

    def push(self, frames: np.ndarray) -> None:
        """Feed (samples, channels) audio; ignored once decided."""
        if self.decided:
            return
        data = np.concatenate([self._carry, frames]) if self._carry.size else frames
        whole = data.shape[0] // self._frame * self._frame
        self._carry = data[whole:].copy()
        if whole:
            blocks = data[:whole].reshape(-1, self._frame, self.channels).astype(np.float64)
            level = 10 * np.log10(np.mean(blocks**2, axis=1) + 1e-12)  # (frames, channels)
            level = level[level.max(axis=1) > self.FLOOR_DB][: self._decide_frames - self._kept]
            self._levels.append(level)
            self._kept += level.shape[0]
        if self._kept >= self._decide_frames:
            self.finish()

    def finish(self) -> None:
        """Take the verdict on what was pushed (called at the end of the recording)."""
        if self.decided:
            return
        self.decided = True
        self._carry = self._carry[:0]
        levels = np.concatenate(self._levels) if self._levels else np.zeros((0, self.channels))
        self._levels = []
        if levels.shape[0] < 2:
            return
        top = levels.max()
        active = levels[levels.max(axis=1) >= top - self.ACTIVE_RANGE_DB]
        loud = np.flatnonzero(levels.max(axis=0) >= top - self.ACTIVE_RANGE_DB)
        loud = loud[active[:, loud].std(axis=0) > 1e-3]  # a constant level has nothing to correlate
        if loud.size < 2 or active.shape[0] < 2:
            return
        corr = np.corrcoef(active[:, loud], rowvar=False)
        self.correlation = float(np.min(corr[np.triu_indices(loud.size, 1)]))

    def warning(self, name: str) -> str | None:
        """The warning for ``name`` if the channels differ, else None."""
        if not self.differ:
            return None
        return (
            f"{name}: its {self.channels} channels carry different sound (level correlation "
            f"{self.correlation:.2f}) and are mixed to mono; if they are different talkers, classify "
            f"one channel at a time, e.g. `ffmpeg -i {shlex.quote(name)} -af 'pan=mono|c0=c0' left.wav`"
        )


# -- decoders ---------------------------------------------------------------------------------------


class _Decoder(Protocol):
    name: str
    sample_rate: int
    channels: int
    frames: int | None
    format: str

    def read_frames(self, n: int | None) -> np.ndarray: ...

    def close(self) -> None: ...


class _Failed(Exception):
    """A decoder cannot read the file; the message says why (without the file name)."""


class _Wav:
    name = "wav"

    def __init__(self, path: str) -> None:
        self._reader = WavReader(path)
        self.sample_rate = self._reader.sample_rate
        self.channels = self._reader.channels
        self.frames: int | None = self._reader.n_frames
        self.format = f"WAV ({self._reader.encoding})"

    def read_frames(self, n: int | None) -> np.ndarray:
        return self._reader.read_frames(n)

    def close(self) -> None:
        self._reader.close()


class _Soundfile:
    """libsndfile, always asked for whole blocks of ``BLOCK`` frames; ``read_frames`` serves from them.

    libsndfile 1.2.2 decodes MP3 wrongly when a read ends inside an MPEG frame (with mpg123's
    "part2_3_length too large" on stderr and samples off by up to 0.2 on 16 kHz MP3), and Ogg Opus
    differently when read a frame at a time. A block that is a whole number of MPEG frames (384,
    576 and 1152 samples) and of 20 ms Opus frames at 48 kHz (960) avoids both, and makes the
    decoded samples the same however the caller chunks its reads (and equal to ffmpeg's decoding
    within 2e-6, also for files of many blocks). mpg123 still prints that message now and then for
    MP3 at 24 kHz and below, at no cost to the samples; for MP3 the reads run with stderr muted.
    """

    name = "soundfile"
    BLOCK = 92160  # 80 x 1152 = 96 x 960; 1.9 s at 48 kHz

    def __init__(self, sf: ModuleType, path: Path, display: str) -> None:
        self._display = display
        try:
            with _stderr_muted():  # libmpg123 prints its doubts about an MP3's header to stderr
                self._file = sf.SoundFile(os.fspath(path))
        except (RuntimeError, ValueError, TypeError, OSError) as exc:
            # LibsndfileError's own text repeats the path; error_string is just the reason.
            raise _Failed(_one_line(getattr(exc, "error_string", None) or exc)) from None
        f = self._file
        self.sample_rate, self.channels = int(f.samplerate), int(f.channels)
        self.frames: int | None = int(f.frames) if f.frames > 0 else None
        kind = {"OGG": "Ogg", "MPEG": "MP3"}.get(f.format, f.format)
        subtype = {"MPEG_LAYER_III": "", "VORBIS": " Vorbis", "OPUS": " Opus"}.get(f.subtype)
        self.format = kind + (subtype if subtype is not None else f" ({f.subtype})")
        self._mute = _stderr_muted if f.format == "MP3" else contextlib.nullcontext
        self._buffer = np.zeros((0, self.channels), dtype=np.float32)
        self._ended = False

    def _fill(self) -> None:
        try:
            with self._mute():
                block = self._file.read(self.BLOCK, dtype="float32", always_2d=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise AudioFileError(f"{self._display}: cannot decode: {_one_line(exc)}") from None
        self._ended = block.shape[0] < self.BLOCK
        block = _clean(block, self._display)
        self._buffer = np.concatenate([self._buffer, block]) if self._buffer.size else block

    def read_frames(self, n: int | None) -> np.ndarray:
        while not self._ended and (n is None or self._buffer.shape[0] < n):
            self._fill()
        n = self._buffer.shape[0] if n is None else n
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def close(self) -> None:
        self._file.close()


@contextlib.contextmanager
def _stderr_muted() -> Iterator[None]:
    """File descriptor 2 on /dev/null for the duration (C libraries print to it directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _Ffmpeg:
    name = "ffmpeg"

    def __init__(self, tools: tuple[str, str], path: Path, display: str) -> None:
        self._ffmpeg, ffprobe = tools
        self._display = display
        # "file:" and an absolute path: a name starting with "-" or holding ":" is still a file.
        self._url = "file:" + os.path.abspath(path)
        info = _probe(ffprobe, self._url)
        self.sample_rate, self.channels = info["sample_rate"], info["channels"]
        self.frames: int | None = None  # only known once decoded
        self.format = info["format"]
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self._ended = False
        self._bytes_out = 0

    def _start(self) -> subprocess.Popen[bytes]:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  # closed by close()
        command = [self._ffmpeg, "-nostdin", "-v", "error", "-i", self._url, "-map", "0:a:0"]
        command += ["-ac", str(self.channels), "-ar", str(self.sample_rate)]
        command += ["-f", "f32le", "-acodec", "pcm_f32le", "-"]
        try:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr
            )
        except OSError as exc:
            raise AudioFileError(f"{self._display}: cannot run ffmpeg: {_one_line(exc)}") from None
        return self._proc

    def read_frames(self, n: int | None) -> np.ndarray:
        width = 4 * self.channels
        if self._ended:
            return np.zeros((0, self.channels), dtype=np.float32)
        proc = self._proc or self._start()
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        want = None if n is None else n * width
        parts: list[bytes] = []
        got = 0
        while want is None or got < want:
            ready, _, _ = select.select([fd], [], [], FFMPEG_STALL_S)
            if not ready:
                self.close()
                raise AudioFileError(f"{self._display}: ffmpeg gave no audio for {FFMPEG_STALL_S:g} s")
            block = os.read(fd, _PIPE_BLOCK if want is None else min(_PIPE_BLOCK, want - got))
            if not block:
                self._finish(proc)
                break
            parts.append(block)
            got += len(block)
            self._bytes_out += len(block)
        data = b"".join(parts)
        frames = len(data) // width  # a partial frame can only come at the very end: dropped
        samples = np.frombuffer(data, dtype="<f4", count=frames * self.channels)
        return _clean(samples.reshape(frames, self.channels), self._display)

    def _finish(self, proc: subprocess.Popen[bytes]) -> None:
        self._ended = True
        code = proc.wait()
        if code != 0:
            self._stderr.seek(0)
            lines = self._stderr.read().decode(errors="replace").strip().splitlines()
            why = _ffmpeg_reason(lines, self._url) if lines else f"exit status {code}"
            self.close()
            raise AudioFileError(f"{self._display}: ffmpeg cannot decode it: {why}")
        if self._bytes_out < 4 * self.channels:
            raise AudioFileError(f"{self._display}: contains no audio (0 samples)")

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def _ffmpeg_reason(lines: list[str], url: str) -> str:
    """ffmpeg's last error line, without the file name it starts with (the message names it)."""
    return _one_line(lines[-1].removeprefix(f"{url}: "))


def _probe(ffprobe: str, url: str) -> dict[str, Any]:
    command = [ffprobe, "-v", "error", "-select_streams", "a:0", "-of", "json"]
    command += ["-show_entries", "stream=codec_name,sample_rate,channels:format=format_name", url]
    try:
        done = subprocess.run(command, capture_output=True, timeout=FFPROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise _Failed(f"ffprobe timed out after {FFPROBE_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise _Failed(f"cannot run ffprobe: {_one_line(exc)}") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise _Failed(_ffmpeg_reason(lines, url) if lines else f"ffprobe exit status {done.returncode}")
    try:
        info = json.loads(done.stdout)
        streams = info.get("streams") or []
        if not streams:
            raise _Failed("no audio stream")
        stream = streams[0]
        rate, channels = int(stream["sample_rate"]), int(stream["channels"])
        codec = str(stream.get("codec_name", "audio"))
        container = str(info.get("format", {}).get("format_name", "")).split(",")[0]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise _Failed("ffprobe gave no sample rate and channel count") from None
    if channels < 1:
        raise _Failed("no audio channels")
    return {"sample_rate": rate, "channels": channels, "format": f"{codec} in {container}"}


def _clean(data: np.ndarray, display: str) -> np.ndarray:
    """Decoder output as float32 in [-1, 1] (lossy codecs overshoot full scale a little)."""
    if not np.isfinite(data).all():
        raise AudioFileError(f"{display}: contains NaN or infinite samples")
    return np.clip(data, -1.0, 1.0).astype(np.float32, copy=False)


# -- the file ---------------------------------------------------------------------------------------


def _check_file(path: Path, name: str) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioFileError(f"{name}: no such file") from None
    except OSError as exc:
        raise AudioFileError(f"{name}: cannot open: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioFileError(f"{name}: is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise AudioFileError(f"{name}: is not a regular file")
    if st.st_size == 0:
        raise AudioFileError(f"{name}: file is empty")


def _head(path: Path, name: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(64)
    except OSError as exc:
        raise AudioFileError(f"{name}: cannot open: {exc.strerror or exc}") from None


def _open_decoder(path: Path, name: str, decoders: Sequence[str]) -> _Decoder:
    unknown = set(decoders) - set(DECODERS)
    if unknown:
        raise ValueError(f"unknown decoders {sorted(unknown)}; choose from {DECODERS}")
    _check_file(path, name)
    head = _head(path, name)
    kind = _sniff(head)
    refused: UnsupportedWav | None = None
    if "wav" in decoders and head[:4] in (b"RIFF", b"RF64", b"RIFX", b"BW64"):
        try:
            return _Wav(name)
        except UnsupportedWav as exc:  # a real WAV in an encoding the others may read
            refused = exc
    problems: list[str] = []
    tried = False
    if "soundfile" in decoders and (sf := _import_soundfile()) is not None:
        tried = True
        try:
            return _Soundfile(sf, path, name)
        except _Failed as exc:
            problems.append(f"soundfile: {exc}")
    if "ffmpeg" in decoders and (tools := _ffmpeg_tools()) is not None:
        tried = True
        try:
            return _Ffmpeg(tools, path, name)
        except _Failed as exc:
            problems.append(f"ffmpeg: {exc}")
    if refused is not None:
        reasons = "; ".join(problems) if problems else f"reading it needs soundfile or ffmpeg: {INSTALL_HINT}"
        raise AudioFileError(f"{refused}; {reasons}")
    if not tried:
        what = f"{kind} audio" if kind else "not a WAV file"
        raise AudioFileError(f"{name}: {what}, and this installation reads WAV only: {INSTALL_HINT}")
    what = f"this {kind} audio" if kind else "it"
    hint = "" if _ffmpeg_tools() is not None else "; ffmpeg (`sudo apt install ffmpeg`) reads more"
    raise AudioFileError(
        f"{name}: cannot decode {what} ({'; '.join(problems)}); "
        f"this installation reads {readable_formats()}{hint}"
    )


class AudioFile:
    """An open audio file of any format a decoder here reads, as float32 mono in chunks.

    ``read(n)`` returns the next ``n`` frames (all that is left when None; fewer at the end, empty
    after), the channels averaged. ``decoders`` limits which decoders may be used (see
    ``DECODERS``). Use as a context manager or call ``close()``.
    """

    def __init__(self, path: str | os.PathLike[str], decoders: Sequence[str] = DECODERS) -> None:
        self.path = Path(path)
        """The file being read."""
        self.name = os.fspath(path)
        """The file as the user gave it, for messages."""
        self._decoder = _open_decoder(self.path, self.name, decoders)
        d = self._decoder
        try:
            if not MIN_RATE <= d.sample_rate <= MAX_RATE:
                raise AudioFileError(
                    f"{self.name}: sample rate {d.sample_rate} Hz is outside the supported "
                    f"{MIN_RATE}..{MAX_RATE} Hz"
                )
        except BaseException:
            d.close()
            raise
        self.decoder = d.name
        """Which decoder reads it: 'wav', 'soundfile' or 'ffmpeg'."""
        self.format = d.format
        """What the decoder says the file is, e.g. 'FLAC (PCM_16)', 'Ogg Opus', 'aac in mov'."""
        self.sample_rate = d.sample_rate
        """The file's sample rate in Hz."""
        self.channels = d.channels
        """Channels in the file (``read`` returns their mean)."""
        self.n_frames = d.frames
        """Frames in the file as its header says (None when only decoding tells, as with ffmpeg)."""
        self.position = 0
        """Frames read so far."""
        self.channel_check = ChannelCheck(d.sample_rate, d.channels) if d.channels > 1 else None
        """The verdict on whether the channels differ (None for mono)."""
        self._warnings = [w for w in [low_rate_warning(self.name, self.sample_rate)] if w]
        self._channels_reported = False

    @property
    def duration(self) -> float | None:
        """Length in seconds, if known before decoding."""
        return None if self.n_frames is None else self.n_frames / self.sample_rate

    def read(self, n: int | None = None) -> np.ndarray:
        if n is not None and n < 0:
            raise VoicegenderError(f"{self.name}: cannot read {n} frames")
        frames = self._decoder.read_frames(n)
        self.position += frames.shape[0]
        check = self.channel_check
        if check is not None and not check.decided:
            check.push(frames)
            if n is None or frames.shape[0] < n:  # the end of the file
                check.finish()
        return mix_to_mono(frames)

    def take_warnings(self) -> list[str]:
        """Warnings not handed out yet: the sample rate's at once, the channels' once decided."""
        check = self.channel_check
        if check is not None and check.decided and not self._channels_reported:
            self._channels_reported = True
            message = check.warning(self.name)
            if message:
                self._warnings.append(message)
        taken, self._warnings = self._warnings, []
        return taken

    def close(self) -> None:
        self._decoder.close()

    def __enter__(self) -> AudioFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AudioFile({self.name!r}, {self.format}, {self.sample_rate} Hz, {self.channels} ch)"


@dataclass(frozen=True)
class DecodedAudio:
    """A whole file decoded: its samples, rate, and the warnings about it."""

    samples: np.ndarray
    """float32 mono in [-1, 1]."""
    sample_rate: int
    """Hz, the file's own."""
    format: str
    """What the file is (see ``AudioFile.format``)."""
    warnings: tuple[str, ...]
    """One line each: audio below 16 kHz, channels that differ."""


def read_audio(path: str | os.PathLike[str], decoders: Sequence[str] = DECODERS) -> DecodedAudio:
    """Decode a whole file of any readable format (AudioFileError/WavError naming it if it can't be)."""
    with AudioFile(path, decoders) as f:
        samples = f.read()
        if samples.size == 0:
            raise AudioFileError(f"{f.name}: contains no audio (0 samples)")
        return DecodedAudio(samples, f.sample_rate, f.format, tuple(f.take_warnings()))

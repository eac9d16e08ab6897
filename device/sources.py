"""Where the daemon's audio comes from: an audio file, raw PCM on stdin, or a microphone.

Every source has ``name``, ``sample_rate`` (its native rate; the pipeline resamples to 16 kHz),
``overflows`` (chunks dropped or overflowed so far), ``open()``, ``read(timeout)``, an idempotent
``close()`` and context-manager support (``with`` opens and closes). ``read`` returns a float32
mono chunk in [-1, 1] at ``sample_rate``, or None when nothing arrived within ``timeout`` seconds;
it raises :class:`SourceEnded` at the end of a file or stdin, and :class:`SourceLost` when a
microphone disappears or fails. sounddevice (PortAudio) is imported only by the microphone code.

Each source logs (logger ``voicegender.sources``) once when it opens at a rate below 16 kHz, which
lacks part of the band the model uses, and a file source once when its channels carry different
sound (see ``audiofile.ChannelCheck``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO, NoReturn, Protocol

import numpy as np

from .audiofile import AUDIO_SUFFIXES, AudioFile, low_rate_warning
from .errors import VoicegenderError
from .resample import check_rate
from .wavio import Pcm16Decoder

log = logging.getLogger(__name__)


class SourceEnded(Exception):
    """The input has no more audio (end of the file, stdin closed). Not an error."""


class SourceLost(VoicegenderError):
    """The microphone disappeared or failed mid-run; the message names the device.

    The daemon may ``close()`` the source and ``open()`` it again later to retry.
    """


class AudioSource(Protocol):
    """What the pipeline reads audio from."""

    name: str
    sample_rate: int
    overflows: int

    def open(self) -> None: ...

    def read(self, timeout: float) -> np.ndarray | None: ...

    def close(self) -> None: ...


class _Source:
    """Context-manager plumbing shared by the sources."""

    name: str = ""
    sample_rate: int = 0
    overflows: int = 0

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.sample_rate} Hz)"


def _check_chunk_seconds(chunk_seconds: float) -> float:
    if not isinstance(chunk_seconds, int | float) or not 0.001 <= chunk_seconds <= 10:
        raise VoicegenderError(f"chunk_seconds must be between 0.001 and 10, not {chunk_seconds!r}")
    return float(chunk_seconds)


def _chunk_frames(sample_rate: int, chunk_seconds: float) -> int:
    return max(1, round(sample_rate * chunk_seconds))


def _warn_low_rate(name: str, sample_rate: int) -> None:
    message = low_rate_warning(name, sample_rate)
    if message:
        log.warning("%s", message)


# -- audio files ----------------------------------------------------------------------------------------


class FileSource(_Source):
    """An audio file (WAV, FLAC, Ogg, MP3, and what ffmpeg reads: see ``audiofile``), read in chunks.

    The file is decoded a chunk at a time, never loaded whole, whatever its format. With
    ``realtime`` the chunks are paced at wall-clock speed, as a microphone would deliver them:
    chunk k is returned once the audio up to its end would have been spoken, timed from ``open()``
    (so sleeping or slow reads never accumulate drift). Otherwise chunks come as fast as they are
    read. Warnings about the file (sample rate, channels) are logged once per ``open()``.
    """

    def __init__(
        self, path: str | os.PathLike[str], realtime: bool = True, chunk_seconds: float = 0.1
    ) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.realtime = realtime
        self.chunk_seconds = _check_chunk_seconds(chunk_seconds)
        with AudioFile(self.path) as header:  # fail early, naming the file, if it cannot be read
            self.sample_rate = header.sample_rate
            self.format = header.format
            """What the file is, e.g. 'WAV (pcm16)', 'FLAC (PCM_16)', 'aac in mov'."""
            self.duration = header.duration
            """Length of the file in seconds (None when only decoding it tells)."""
        self.overflows = 0
        self._chunk = _chunk_frames(self.sample_rate, self.chunk_seconds)
        self._reader: AudioFile | None = None
        self._pending: np.ndarray | None = None
        self._emitted = 0
        self._t0 = 0.0

    def open(self) -> None:
        if self._reader is not None:
            return
        self._reader = AudioFile(self.path)
        self._pending = None
        self._emitted = 0
        self._t0 = time.monotonic()
        self._log_warnings()

    def _log_warnings(self) -> None:
        assert self._reader is not None
        for message in self._reader.take_warnings():
            log.warning("%s", message)

    def read(self, timeout: float) -> np.ndarray | None:
        reader = self._reader
        if reader is None:
            raise VoicegenderError(f"{self.name}: read() before open()")
        if self._pending is None:
            chunk = reader.read(self._chunk)
            self._log_warnings()
            if chunk.size == 0:
                raise SourceEnded(self.name)
            self._pending = chunk
        if self.realtime:
            due = self._t0 + (self._emitted + self._pending.size) / self.sample_rate
            wait = due - time.monotonic()
            if wait > timeout:
                time.sleep(max(0.0, timeout))
                return None
            if wait > 0:
                time.sleep(wait)
        chunk, self._pending = self._pending, None
        self._emitted += chunk.size
        return chunk

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()


# -- raw PCM on stdin -----------------------------------------------------------------------------------

_EOF = object()


class StdinSource(_Source):
    """Raw signed 16-bit little-endian mono PCM from stdin (or ``stream``), e.g. from ``arecord``.

    A reader thread feeds a bounded queue, so ``read`` never blocks past its timeout. When the queue
    is full the thread waits (back-pressure, no data lost). Input may be split anywhere, even inside
    a sample; an incomplete final sample at end of input is dropped.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        chunk_seconds: float = 0.1,
        stream: BinaryIO | None = None,
        queue_chunks: int = 50,
    ) -> None:
        if queue_chunks < 1:
            raise VoicegenderError(f"stdin: queue_chunks must be at least 1, not {queue_chunks!r}")
        self.name = "stdin"
        self.sample_rate = check_rate(sample_rate, "stdin sample rate")
        self.chunk_seconds = _check_chunk_seconds(chunk_seconds)
        self.overflows = 0
        self._stream = stream
        self._chunk_bytes = 2 * _chunk_frames(sample_rate, self.chunk_seconds)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_chunks)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._decoder = Pcm16Decoder()
        self._end: BaseException | None = None  # raised by the read after the one that saw it

    def open(self) -> None:
        if self._thread is not None:
            return
        _warn_low_rate(self.name, self.sample_rate)
        stream = self._stream if self._stream is not None else sys.stdin.buffer
        # Daemon thread: a read blocked on an idle pipe cannot be interrupted, and must not keep
        # the process alive after the daemon stops.
        self._thread = threading.Thread(
            target=self._pump, args=(stream,), name="voicegender-stdin", daemon=True
        )
        self._thread.start()

    def _pump(self, stream: BinaryIO) -> None:
        # read1 returns what one read of the pipe gives instead of waiting for a full chunk.
        read = getattr(stream, "read1", None) or stream.read
        try:
            while not self._stop.is_set():
                data = read(self._chunk_bytes)
                if not data:
                    break
                self._put(bytes(data))
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed under us
            self._put(VoicegenderError(f"stdin: read failed: {exc}"))
            return
        self._put(SourceEnded(self.name))

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, timeout: float) -> np.ndarray | None:
        if self._thread is None:
            raise VoicegenderError("stdin: read() before open()")
        if self._end is not None:
            raise self._end
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if isinstance(item, BaseException):
                self._end = item
                raise item
            parts = [self._decoder.decode(item)]
            # Gather what else is already queued (a writer may send tiny pieces), up to about a chunk.
            size = len(item)
            while size < self._chunk_bytes:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(more, BaseException):
                    self._end = more
                    break
                parts.append(self._decoder.decode(more))
                size += len(more)
            samples = np.concatenate(parts) if len(parts) > 1 else parts[0]
            if samples.size:
                return samples
            if self._end is not None:
                raise self._end
            # Only half a sample so far: keep waiting for the rest until the deadline.

    def close(self) -> None:
        self._stop.set()
        # Unblock a reader thread waiting on a full queue.
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()


# -- microphones (sounddevice / PortAudio) --------------------------------------------------------------

_open_streams = 0  # MicSource streams open in this process; PortAudio is only re-scanned when none are
_streams_lock = threading.Lock()
_abandoned: list[Any] = []  # streams whose close() hung (see _close_stream); kept so they are never freed

# PortAudio error codes that mean "this device cannot do what was asked" (a settings problem,
# not a device that went away).
_PA_SETTINGS_ERRORS = frozenset({-9997, -9998, -9994})  # invalid sample rate, channel count, format


def _import_sounddevice() -> ModuleType:
    try:
        import sounddevice
    except OSError as exc:  # raised when the PortAudio shared library cannot be found
        raise VoicegenderError(
            f"microphone: sounddevice cannot load the PortAudio library ({exc}); "
            "install it with `sudo apt install libportaudio2`"
        ) from None
    except ImportError:
        raise VoicegenderError(
            "microphone: the Python package sounddevice is not installed; "
            "install it with `pip install 'voicegender[device]'`"
        ) from None
    return sounddevice


def _rescan(sd: ModuleType) -> None:
    """Make PortAudio enumerate devices again, so a microphone plugged in after start is seen.

    PortAudio lists devices once, when it is initialised; re-initialising closes every stream,
    so this is only done while no MicSource stream is open.
    """
    with _streams_lock:
        if _open_streams or not (hasattr(sd, "_terminate") and hasattr(sd, "_initialize")):
            return
        try:
            with contextlib.suppress(sd.PortAudioError):
                sd._terminate()
            sd._initialize()
        except sd.PortAudioError as exc:
            raise VoicegenderError(f"microphone: cannot initialise PortAudio: {exc}") from None


def _close_stream(stream: Any, sd: ModuleType | None, timeout: float) -> bool:
    """Close a PortAudio stream, giving up after ``timeout`` seconds; True if it closed.

    Closing joins PortAudio's callback thread, and a driver whose device or sound server died can
    leave that thread deadlocked (seen with ALSA's pulse plugin when the PulseAudio server is
    killed). Rather than hang the daemon, such a stream is abandoned: it stays counted as open, so
    PortAudio is never re-initialised under it, and sounddevice's exit handler (which would try to
    close it again) is unregistered.
    """
    global _open_streams
    closer = threading.Thread(target=stream.close, kwargs={"ignore_errors": True}, daemon=True)
    closer.start()
    closer.join(timeout)
    if closer.is_alive():
        _abandoned.append(stream)
        if sd is not None and hasattr(sd, "_exit_handler"):
            atexit.unregister(sd._exit_handler)
        return False
    with _streams_lock:
        _open_streams -= 1
    return True


def _input_devices(sd: ModuleType) -> list[tuple[int, dict[str, Any]]]:
    return [(i, d) for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


def _default_input_index(sd: ModuleType) -> int:
    try:
        return int(sd.query_devices(kind="input")["index"])
    except Exception:  # PortAudioError/ValueError when there is no default input device
        return -1


def _describe(devices: list[tuple[int, dict[str, Any]]]) -> str:
    if not devices:
        return "none found"
    return ", ".join(f"[{i}] {d['name']}" for i, d in devices)


def list_input_devices() -> list[dict[str, Any]]:
    """The audio input devices present now: index, name, channels, default_samplerate, is_default."""
    sd = _import_sounddevice()
    _rescan(sd)
    default = _default_input_index(sd)
    return [
        {
            "index": i,
            "name": str(d["name"]),
            "channels": int(d["max_input_channels"]),
            "default_samplerate": float(d["default_samplerate"]),
            "is_default": i == default,
        }
        for i, d in _input_devices(sd)
    ]


def find_input_device(sd: ModuleType, device: str | int | None) -> tuple[int, dict[str, Any]]:
    """The (index, info) of the input device given by index, name (substring) or None (default)."""
    devices = _input_devices(sd)
    if not devices:
        raise VoicegenderError("microphone: no audio input devices found (is a microphone connected?)")
    by_index = dict(devices)
    if device is None or (isinstance(device, str) and not device.strip()):
        index = _default_input_index(sd)
        if index not in by_index:
            raise VoicegenderError(
                f"microphone: there is no default input device; choose one of: {_describe(devices)}"
            )
        return index, by_index[index]
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        if index not in by_index:
            raise VoicegenderError(
                f"microphone: device {index} is not an audio input device; "
                f"available input devices: {_describe(devices)}"
            )
        return index, by_index[index]
    query = device.strip().lower()
    exact = [(i, d) for i, d in devices if str(d["name"]).lower() == query]
    matches = exact or [(i, d) for i, d in devices if query in str(d["name"]).lower()]
    if not matches:
        raise VoicegenderError(
            f"microphone: no input device matches {device!r}; available input devices: {_describe(devices)}"
        )
    if len(matches) > 1:
        raise VoicegenderError(
            f"microphone: {device!r} matches several input devices ({_describe(matches)}); "
            "give a longer part of the name or the device index"
        )
    return matches[0]


class MicSource(_Source):
    """A microphone through sounddevice, at the device's default rate unless ``sample_rate`` is given.

    ``device`` is an index, a (case-insensitive) part of the device name, or None for the default
    input. The PortAudio callback copies each block, downmixed to mono, into a bounded queue; when
    the consumer falls behind the oldest chunk is dropped and counted in ``overflows`` (as are
    PortAudio input overflows). ``read`` raises :class:`SourceLost` when the stream stops by itself,
    PortAudio reports an error, or no audio arrives for ``stall_seconds`` (``start_seconds`` after
    opening, as some drivers take a moment to start). ``close()`` gives up on a stream whose driver
    does not release it within ``close_seconds`` (see ``_close_stream``). ``sample_rate`` is the
    requested rate, or 0 until ``open()`` has found the device and its default rate.
    """

    def __init__(
        self,
        device: str | int | None = None,
        sample_rate: int | None = None,
        chunk_seconds: float = 0.1,
        queue_chunks: int = 50,
        stall_seconds: float = 2.0,
        start_seconds: float = 5.0,
        close_seconds: float = 3.0,
    ) -> None:
        if queue_chunks < 1:
            raise VoicegenderError(f"microphone: queue_chunks must be at least 1, not {queue_chunks!r}")
        self.device = device
        self.requested_rate = (
            None if sample_rate is None else check_rate(sample_rate, "microphone sample rate")
        )
        self.chunk_seconds = _check_chunk_seconds(chunk_seconds)
        self.queue_chunks = queue_chunks
        self.stall_seconds = max(float(stall_seconds), 3 * self.chunk_seconds)
        self.start_seconds = max(float(start_seconds), self.stall_seconds)
        self.close_seconds = float(close_seconds)
        self.name = "default input" if device is None else str(device)
        self.sample_rate = self.requested_rate or 0
        self.overflows = 0
        self._sd: ModuleType | None = None
        self._stream: Any = None
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=queue_chunks)
        self._finished = threading.Event()
        self._lost: str | None = None
        self._opened_at = 0.0
        self._last_block: float | None = None
        self._was_open = False

    def open(self) -> None:
        global _open_streams
        if self._stream is not None:
            return
        sd = self._sd = _import_sounddevice()
        _rescan(sd)
        try:
            index, info = find_input_device(sd, self.device)
        except VoicegenderError as exc:
            if self._was_open:  # it worked before: the device is unplugged now, worth retrying
                raise SourceLost(str(exc)) from None
            raise
        self.name = str(info["name"])
        rate = self.requested_rate or round(float(info["default_samplerate"]))
        channels = self._pick_channels(sd, index, info, rate)
        self.sample_rate = rate
        self._queue = queue.Queue(maxsize=self.queue_chunks)
        self._finished = threading.Event()
        self._lost = None
        self._last_block = None
        stream = None
        try:
            stream = sd.InputStream(
                device=index,
                samplerate=rate,
                channels=channels,
                dtype="float32",
                blocksize=_chunk_frames(rate, self.chunk_seconds),
                callback=self._callback,
                finished_callback=self._finished.set,
            )
            stream.start()
        except sd.PortAudioError as exc:
            if stream is not None:
                stream.close(ignore_errors=True)
            raise SourceLost(f"microphone {self.name!r}: cannot start recording: {exc}") from None
        self._opened_at = time.monotonic()
        self._stream = stream
        if not self._was_open:  # once, not at every reconnection
            _warn_low_rate(f"microphone {self.name!r}", rate)
        self._was_open = True
        with _streams_lock:
            _open_streams += 1

    def _pick_channels(self, sd: ModuleType, index: int, info: dict[str, Any], rate: int) -> int:
        """Mono if the device can record it, else its channel count (downmixed in the callback)."""
        error: Exception | None = None
        for channels in dict.fromkeys((1, int(info["max_input_channels"]))):
            try:
                sd.check_input_settings(device=index, channels=channels, dtype="float32", samplerate=rate)
                return channels
            except sd.PortAudioError as exc:
                error = exc
            except ValueError as exc:  # sounddevice's own checks (e.g. too many channels)
                error = exc
        code = error.args[1] if isinstance(error, sd.PortAudioError) and len(error.args) > 1 else None
        if code in _PA_SETTINGS_ERRORS or isinstance(error, ValueError):
            raise VoicegenderError(f"microphone {self.name!r} cannot record at {rate} Hz: {error}")
        raise SourceLost(f"microphone {self.name!r}: cannot open: {error}")

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # Runs on PortAudio's thread: copy (indata is reused), queue, never block.
        if status.input_overflow:
            self.overflows += 1
        if indata.shape[1] == 1:
            block = np.array(indata[:, 0], dtype=np.float32)
        else:
            block = indata.mean(axis=1, dtype=np.float32)
        self._last_block = time.monotonic()
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            self.overflows += 1
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(block)

    def read(self, timeout: float) -> np.ndarray | None:
        if self._stream is None:
            if self._lost is not None:
                raise SourceLost(self._lost)
            raise VoicegenderError(f"microphone {self.name!r}: read() before open()")
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            # Wait in short slices so a dead device is noticed well before a long timeout ends.
            try:
                return self._queue.get(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                pass
            self._check_alive()
            if time.monotonic() >= deadline:
                return None

    def _check_alive(self) -> None:
        sd, stream = self._sd, self._stream
        assert sd is not None and stream is not None
        try:
            active = stream.active
        except sd.PortAudioError as exc:
            self._lose(f"stream error: {exc}")
        if self._finished.is_set() or not active:
            self._lose("the stream stopped (device disconnected or failed)")
        now = time.monotonic()
        last = self._last_block
        if last is None:
            if now - self._opened_at > self.start_seconds:
                self._lose(f"no audio within {self.start_seconds:g} s of opening")
        elif now - last > self.stall_seconds:
            self._lose(f"no audio for {now - last:.1f} s")

    def _lose(self, why: str) -> NoReturn:
        self._lost = f"microphone {self.name!r} lost: {why}"
        self.close()
        raise SourceLost(self._lost)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None and not _close_stream(stream, self._sd, self.close_seconds):
            self._lost = (
                self._lost or f"microphone {self.name!r} lost"
            ) + " (the audio driver did not let go of it)"


# -- choosing a source ----------------------------------------------------------------------------------


def open_source(
    spec: str,
    *,
    realtime: bool = True,
    sample_rate: int | None = None,
    device: str | int | None = None,
    chunk_seconds: float = 0.1,
    queue_chunks: int = 50,
) -> AudioSource:
    """The source for an ``--input`` value: "-" (raw s16le stdin), "mic", or an audio file path.

    The source is not opened yet: use it in a ``with`` block or call ``open()``. ``sample_rate`` is
    stdin's rate (default 16000) or the microphone's (default: the device's own); a file has its
    own rate.
    """
    if spec == "-":
        return StdinSource(sample_rate or 16000, chunk_seconds, queue_chunks=queue_chunks)
    if spec == "mic":
        return MicSource(device, sample_rate, chunk_seconds, queue_chunks)
    path = Path(spec)
    if path.exists() or path.suffix.lower() in AUDIO_SUFFIXES:
        return FileSource(path, realtime=realtime, chunk_seconds=chunk_seconds)
    raise VoicegenderError(f"input {spec!r}: expected '-' (stdin), 'mic' or an existing audio file")

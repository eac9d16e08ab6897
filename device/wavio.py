"""WAV files and raw PCM bytes to float32 mono, in numpy and the standard library.

The stdlib ``wave`` module rejects IEEE float and WAVE_FORMAT_EXTENSIBLE files, so RIFF/WAVE is
parsed here. Supported: integer PCM with 8-bit (unsigned) or 9..32-bit (signed, in 2-, 3- or 4-byte
containers) samples, 32- and 64-bit IEEE float, plain or WAVE_FORMAT_EXTENSIBLE, any number of
channels (downmixed by their mean). Integers are scaled by their container's full scale (int16 /
32768, as libsndfile and soundfile do); float samples are clipped to [-1, 1] and must be finite.

Decisions about awkward files:

- A data chunk that claims more bytes than the file holds is an error ("truncated"), except the
  placeholders streaming writers leave when they cannot seek back (0xFFFFFFFF from ffmpeg,
  0x7FFFF000 from sox), which mean "to the end of the file".
- Chunks after the data chunk are not read; a trailing partial frame is ignored.
- A file with no samples is an error ("contains no audio").

Every problem raises :class:`WavError` (a VoicegenderError) with one line naming the file; a valid
file in an encoding or variant this parser does not decode (A-law, ADPCM, RF64, ...) raises its
subclass :class:`UnsupportedWav`, which ``audiofile`` hands to libsndfile or ffmpeg instead. On the
device, audio is only ever read: ``write_wav`` exists for tests and benchmarks, and the daemon never
writes audio to disk.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import VoicegenderError

MIN_RATE = 4000
"""Lowest sample rate accepted in a WAV header, in Hz."""
MAX_RATE = 384000
"""Highest sample rate accepted in a WAV header, in Hz."""

_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
# KSDATAFORMAT_SUBTYPE_* GUIDs are the 16-bit format tag followed by these 14 bytes.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_UNKNOWN_SIZES = (0xFFFFFFFF, 0x7FFFF000)
_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG audio",
    0x0055: "MP3",
    0x0092: "Dolby AC-3",
    0x00FF: "AAC",
    0x1610: "HE-AAC",
    0xF1AC: "FLAC",
}
_READ_BLOCK_BYTES = 1 << 20


class WavError(VoicegenderError):
    """A WAV file could not be read; the message names the file and the problem."""


class UnsupportedWav(WavError):
    """A well-formed WAV (or RF64/RIFX/BW64) file in an encoding this parser does not decode."""


def _fail(name: str, problem: str) -> WavError:
    return WavError(f"{name}: {problem}")


def _unsupported(name: str, problem: str) -> UnsupportedWav:
    return UnsupportedWav(f"{name}: {problem}")


def _format_name(tag: int) -> str:
    name = _FORMAT_NAMES.get(tag, "unknown encoding")
    return f"{name} (format tag 0x{tag:04X})"


class WavReader:
    """An open WAV file read in chunks of float32 mono samples, for pacing a file in real time.

    Only the header is parsed up front; ``read(n)`` decodes the next ``n`` frames, so memory stays
    bounded whatever the file's length. Use as a context manager or call ``close()``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        """The file being read."""
        self._name = os.fspath(path)  # as the user gave it, for messages
        self._file = _open(self.path, self._name)
        try:
            size = os.fstat(self._file.fileno()).st_size
            self._parse(size)
        except BaseException:
            self._file.close()
            raise
        self.position = 0
        """Frames read so far."""

    # -- header -----------------------------------------------------------------------------------

    def _parse(self, file_size: int) -> None:
        f, path = self._file, self._name
        if file_size == 0:
            raise _fail(path, "file is empty")
        head = self._read_up_to(12)
        if head[:4] in (b"RF64", b"RIFX", b"BW64"):
            raise _unsupported(path, f"{head[:4].decode()} files are not supported (only little-endian RIFF)")
        if not (head[:4] == b"RIFF" or (len(head) < 4 and b"RIFF".startswith(head))):
            raise _fail(path, f"not a RIFF/WAVE file (starts with {head[:4]!r})")
        if len(head) < 12:
            raise _fail(path, f"truncated RIFF header ({len(head)} of 12 bytes)")
        if head[8:12] != b"WAVE":
            raise _fail(path, f"RIFF file but not WAVE (form type {head[8:12]!r})")
        fmt: tuple[bytes, int] | None = None  # (first bytes, declared size)
        data: tuple[int, int] | None = None  # (offset, size in bytes)
        pos = 12
        while fmt is None or data is None:
            if pos + 8 > file_size:
                if pos < file_size:
                    raise _fail(path, f"truncated chunk header at byte {pos}")
                break
            f.seek(pos)
            chunk_id, size = struct.unpack("<4sI", self._read_exact(8, "chunk header"))
            body = pos + 8
            remaining = file_size - body
            if chunk_id == b"data":
                if data is not None:
                    raise _fail(path, "more than one data chunk")
                if size > remaining:
                    if size not in _UNKNOWN_SIZES:
                        raise _fail(
                            path, f"truncated: data chunk declares {size} bytes but only {remaining} follow"
                        )
                    size = remaining
                data = (body, size)
            elif size > remaining:
                raise _fail(
                    path, f"truncated: {chunk_id!r} chunk declares {size} bytes but only {remaining} follow"
                )
            elif chunk_id == b"fmt ":
                if fmt is not None:
                    raise _fail(path, "more than one fmt chunk")
                fmt = (self._read_exact(min(size, 64), "fmt chunk"), size)
            pos = body + size + (size & 1)  # chunks are padded to an even length
        if fmt is None:
            raise _fail(path, "no fmt chunk (not a valid WAV file)")
        if data is None:
            raise _fail(path, "no data chunk (not a valid WAV file)")
        self._parse_fmt(*fmt)
        self._data_offset = data[0]
        self.n_frames = data[1] // self._block_align
        """Number of frames (samples per channel) in the file."""
        if self.n_frames == 0:
            raise _fail(path, "contains no audio (0 samples)")
        self._file.seek(self._data_offset)

    def _parse_fmt(self, fmt: bytes, size: int) -> None:
        path = self._name
        if size < 16:
            raise _fail(path, f"fmt chunk too short ({size} bytes, need 16)")
        tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
        container_bits = bits
        if tag == _EXTENSIBLE:
            if size < 40:
                raise _fail(path, f"WAVE_FORMAT_EXTENSIBLE fmt chunk too short ({size} bytes, need 40)")
            valid_bits = struct.unpack("<H", fmt[18:20])[0]
            guid = fmt[24:40]
            if guid[2:] != _GUID_TAIL:
                raise _unsupported(
                    path, f"unsupported encoding: WAVE_FORMAT_EXTENSIBLE sub-format {guid.hex()}"
                )
            tag = struct.unpack("<H", guid[:2])[0]
            if valid_bits:
                bits = valid_bits
        if tag not in (_PCM, _FLOAT):
            raise _unsupported(
                path, f"unsupported encoding: {_format_name(tag)}; convert it to PCM or float WAV"
            )
        if channels == 0:
            raise _fail(path, "has zero channels")
        if not MIN_RATE <= rate <= MAX_RATE:
            raise _fail(path, f"sample rate {rate} Hz is outside the supported {MIN_RATE}..{MAX_RATE} Hz")
        if tag == _PCM:
            if not 8 <= container_bits <= 32 or not 1 <= bits <= container_bits:
                raise _unsupported(path, f"unsupported PCM sample size: {bits} bits in {container_bits}")
            width = (container_bits + 7) // 8
            kind = "u8" if width == 1 else f"pcm{8 * width}"
        else:
            if container_bits not in (32, 64) or bits != container_bits:
                raise _unsupported(path, f"unsupported float sample size: {bits} bits (need 32 or 64)")
            width = container_bits // 8
            kind = f"float{container_bits}"
        if block_align != channels * width:
            raise _fail(
                path,
                f"{bits} bits per sample is inconsistent with block align {block_align} "
                f"for {channels} channel(s)",
            )
        self.sample_rate = rate
        """Sample rate in Hz."""
        self.channels = channels
        """Channels in the file (read() returns their mean)."""
        self.encoding = kind
        """Sample encoding: 'u8', 'pcm16', 'pcm24', 'pcm32', 'float32' or 'float64'."""
        self._width = width
        self._block_align = block_align

    def _read_up_to(self, n: int) -> bytes:
        try:
            return self._file.read(n)
        except OSError as exc:
            raise _fail(self._name, f"cannot read: {exc.strerror or exc}") from None

    def _read_exact(self, n: int, what: str) -> bytes:
        got = self._read_up_to(n)
        if len(got) < n:
            raise _fail(self._name, f"truncated {what} ({len(got)} of {n} bytes)")
        return got

    # -- samples ----------------------------------------------------------------------------------

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_frames / self.sample_rate

    def read(self, n: int | None = None) -> np.ndarray:
        """The next ``n`` frames (all remaining when None) as float32 mono; fewer at the end, empty after."""
        return mix_to_mono(self.read_frames(n))

    def read_frames(self, n: int | None = None) -> np.ndarray:
        """Like ``read`` but every channel: float32 of shape (frames, channels)."""
        left = self.n_frames - self.position
        n = left if n is None else max(0, min(int(n), left))
        out = np.empty((n, self.channels), dtype=np.float32)
        step = max(1, _READ_BLOCK_BYTES // self._block_align)
        for i in range(0, n, step):
            k = min(step, n - i)
            raw = self._read_up_to(k * self._block_align)
            if len(raw) < k * self._block_align:
                raise _fail(self._name, "data ended early (did the file change while being read?)")
            out[i : i + k] = self._decode(raw, k)
        self.position += n
        return out

    def chunks(self, frames: int) -> Iterator[np.ndarray]:
        """The rest of the file in chunks of ``frames`` frames (the last may be shorter)."""
        if frames < 1:
            raise VoicegenderError(f"{self._name}: chunk size must be at least 1 frame, not {frames}")
        return (self.read(frames) for _ in range(self.position, self.n_frames, frames))

    def _decode(self, raw: bytes, frames: int) -> np.ndarray:
        w, kind = self._width, self.encoding
        if kind == "u8":
            x = np.frombuffer(raw, dtype=np.uint8).astype(np.float32)
            x -= 128.0
            x *= 1.0 / 128
        elif kind == "pcm24":
            # Put each 3-byte sample in the top of an int32 so the sign comes for free.
            wide = np.zeros((frames * self.channels, 4), dtype=np.uint8)
            wide[:, 1:] = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
            x = wide.view("<i4").reshape(-1).astype(np.float32) * np.float32(1.0 / 2**31)
        elif kind.startswith("pcm"):
            x = np.frombuffer(raw, dtype=f"<i{w}").astype(np.float32) * np.float32(1.0 / 2 ** (8 * w - 1))
        else:
            x = np.frombuffer(raw, dtype=f"<f{w}")
            if not np.isfinite(x).all():
                raise _fail(self._name, "contains NaN or infinite samples")
            x = np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)
        return x.reshape(frames, self.channels)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> WavReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open(path: Path, name: str) -> BinaryIO:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise _fail(name, "no such file") from None
    except OSError as exc:
        raise _fail(name, f"cannot open: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise _fail(name, "is a directory, not a WAV file")
    if not stat.S_ISREG(st.st_mode):
        raise _fail(name, "is not a regular file")
    try:
        return open(path, "rb")  # closed by WavReader.close
    except OSError as exc:
        raise _fail(name, f"cannot open: {exc.strerror or exc}") from None


def mix_to_mono(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) float32 to mono: the mean of the channels (the array itself when mono)."""
    if frames.shape[1] == 1:
        return frames[:, 0]
    return frames.mean(axis=1, dtype=np.float32)


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read a whole WAV file: (float32 mono samples in [-1, 1], sample rate in Hz)."""
    with WavReader(path) as reader:
        return reader.read(), reader.sample_rate


def pcm16_to_float(data: bytes | bytearray | memoryview, channels: int = 1) -> np.ndarray:
    """Whole frames of signed 16-bit little-endian PCM to float32 mono (channels averaged)."""
    if channels < 1:
        raise VoicegenderError(f"raw PCM: channels must be at least 1, not {channels}")
    data = memoryview(data).cast("B")
    frame_bytes = 2 * channels
    if len(data) % frame_bytes:
        raise VoicegenderError(
            f"raw PCM: {len(data)} bytes is not a whole number of {frame_bytes}-byte frames"
        )
    x = np.frombuffer(data, dtype="<i2").astype(np.float32)
    x *= np.float32(1.0 / 32768)
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return x


class Pcm16Decoder:
    """Decodes a raw s16le byte stream (e.g. stdin) split anywhere, even inside a sample.

    Bytes of an incomplete frame are kept for the next ``decode`` call, so the concatenated output
    equals ``pcm16_to_float`` of the concatenated input.
    """

    def __init__(self, channels: int = 1) -> None:
        if channels < 1:
            raise VoicegenderError(f"raw PCM: channels must be at least 1, not {channels}")
        self.channels = channels
        self._frame_bytes = 2 * channels
        self._pending = b""

    @property
    def pending_bytes(self) -> int:
        """Bytes held back from the last call: the start of an incomplete frame."""
        return len(self._pending)

    def decode(self, data: bytes | bytearray | memoryview) -> np.ndarray:
        """Decode the complete frames in ``data`` (after any held bytes) to float32 mono."""
        data = memoryview(data).cast("B")
        buf = self._pending + bytes(data) if self._pending else data
        whole = len(buf) - len(buf) % self._frame_bytes
        self._pending = bytes(buf[whole:])
        return pcm16_to_float(memoryview(buf)[:whole], self.channels)


def write_wav(path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM WAV (for tests and benchmarks; the device never writes audio to disk).

    ``audio`` is float in [-1, 1], shape (frames,) or (frames, channels); it is clipped and scaled
    by 32768 (as ``read_wav`` divides), so 16-bit audio read and written back is unchanged.
    """
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] < 1:
        raise VoicegenderError(f"{path}: can only write audio of shape (frames,) or (frames, channels)")
    if not np.isfinite(audio).all():
        raise VoicegenderError(f"{path}: refusing to write NaN or infinite samples")
    if not isinstance(sample_rate, int | np.integer) or not MIN_RATE <= sample_rate <= MAX_RATE:
        raise VoicegenderError(f"{path}: sample rate {sample_rate!r} is outside {MIN_RATE}..{MAX_RATE} Hz")
    channels = audio.shape[1]
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2")
    data_size = pcm.nbytes
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_size,
        b"WAVE",
        b"fmt ",
        16,
        _PCM,
        channels,
        int(sample_rate),
        int(sample_rate) * 2 * channels,
        2 * channels,
        16,
        b"data",
        data_size,
    )
    try:
        with open(path, "wb") as f:
            f.write(header)
            f.write(pcm.tobytes())
    except OSError as exc:
        raise VoicegenderError(f"{path}: cannot write: {exc.strerror or exc}") from None

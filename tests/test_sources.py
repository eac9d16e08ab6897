"""Audio sources: audio files (paced and fast), raw PCM on a pipe, and microphones via a fake sounddevice."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicegender import sources
from voicegender.audiofile import low_rate_warning, read_audio
from voicegender.errors import VoicegenderError
from voicegender.sources import (
    FileSource,
    MicSource,
    SourceEnded,
    SourceLost,
    StdinSource,
    list_input_devices,
    open_source,
)
from voicegender.wavio import pcm16_to_float, read_wav, write_wav


def drain(source, timeout: float = 1.0, limit: float = 20.0) -> list[np.ndarray]:
    """Read chunks until SourceEnded (failing the test if that takes longer than ``limit`` seconds)."""
    chunks = []
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            chunk = source.read(timeout)
        except SourceEnded:
            return chunks
        if chunk is not None:
            chunks.append(chunk)
    raise AssertionError("source did not end")


@pytest.fixture
def tone_wav(tmp_path: Path) -> Path:
    """0.5 s of a stereo 8 kHz chirp with different channels (so the downmix matters)."""
    sr = 8000
    t = np.arange(sr // 2) / sr
    left = 0.5 * np.sin(2 * np.pi * (200 + 800 * t) * t)
    right = 0.3 * np.sin(2 * np.pi * 1300 * t)
    path = tmp_path / "tone.wav"
    write_wav(path, np.stack([left, right], axis=1), sr)
    return path


# -- FileSource ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_seconds", [0.001, 0.01, 0.1, 0.37, 2.0])
def test_wav_chunks_concatenate_to_the_whole_file(tone_wav: Path, chunk_seconds: float) -> None:
    expected, sr = read_wav(tone_wav)
    with FileSource(tone_wav, realtime=False, chunk_seconds=chunk_seconds) as src:
        assert src.sample_rate == sr == 8000
        chunks = drain(src)
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    assert all(c.size == max(1, round(sr * chunk_seconds)) for c in chunks[:-1])
    np.testing.assert_array_equal(np.concatenate(chunks), expected)


def test_wav_fixture_reads_back_exactly(fixtures_dir: Path) -> None:
    path = fixtures_dir / "female_3575.wav"
    expected, sr = read_wav(path)
    with FileSource(path, realtime=False) as src:
        assert (src.sample_rate, src.name) == (sr, str(path))
        got = np.concatenate(drain(src))
    np.testing.assert_array_equal(got, expected)


def test_wav_realtime_is_paced_at_wall_clock_speed_and_fast_mode_is_not(tone_wav: Path) -> None:
    with FileSource(tone_wav, realtime=True, chunk_seconds=0.1) as src:
        t0 = time.monotonic()
        assert src.read(0.01) is None  # the first 0.1 s has not "happened" yet
        paced = drain(src, timeout=0.5)
        paced_time = time.monotonic() - t0
    with FileSource(tone_wav, realtime=False, chunk_seconds=0.1) as src:
        t0 = time.monotonic()
        fast = drain(src)
        fast_time = time.monotonic() - t0
    assert 0.4 <= paced_time <= 1.5  # the file is 0.5 s long
    assert fast_time < paced_time / 4
    np.testing.assert_array_equal(np.concatenate(paced), np.concatenate(fast))


def test_wav_realtime_does_not_drift_when_the_reader_is_late(tone_wav: Path) -> None:
    # Reading late catches up at once (chunks are due by the clock, not 0.1 s after the last read).
    with FileSource(tone_wav, realtime=True, chunk_seconds=0.1) as src:
        t0 = time.monotonic()
        time.sleep(0.35)
        got = [src.read(0.0) for _ in range(3)]
        assert all(c is not None for c in got)
        assert time.monotonic() - t0 < 0.45
        drain(src)
        assert time.monotonic() - t0 < 1.5


def test_wav_end_raises_source_ended_every_time(tone_wav: Path) -> None:
    with FileSource(tone_wav, realtime=False, chunk_seconds=1.0) as src:
        assert src.read(0.1) is not None
        for _ in range(2):
            with pytest.raises(SourceEnded):
                src.read(0.1)


def test_wav_close_is_idempotent_and_reading_closed_is_an_error(tone_wav: Path) -> None:
    src = FileSource(tone_wav, realtime=False)
    src.open()
    src.close()
    src.close()
    with pytest.raises(VoicegenderError, match="before open"):
        src.read(0.1)


@pytest.mark.parametrize("content", [b"", b"this is not audio at all", b"RIFF\x10\x00\x00\x00WAVEfmt "])
def test_wav_bad_file_is_an_error_naming_it(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(content)
    with pytest.raises(VoicegenderError, match=r"broken\.wav"):
        FileSource(bad).open()


def test_wav_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(VoicegenderError, match=r"nothere\.wav"):
        FileSource(tmp_path / "nothere.wav").open()


def test_chunk_seconds_is_checked(tone_wav: Path) -> None:
    with pytest.raises(VoicegenderError, match="chunk_seconds"):
        FileSource(tone_wav, chunk_seconds=0)


def test_a_flac_file_gives_exactly_the_wavs_chunks(tone_wav: Path, tmp_path: Path) -> None:
    stereo, rate = soundfile.read(tone_wav, dtype="float32")
    flac = tmp_path / "tone.flac"
    soundfile.write(flac, stereo, rate)  # 16-bit in, 16-bit FLAC: lossless
    with FileSource(tone_wav, realtime=False, chunk_seconds=0.03) as wav:
        expected = drain(wav)
    with FileSource(flac, realtime=False, chunk_seconds=0.03) as src:
        assert (src.sample_rate, src.format) == (8000, "FLAC (PCM_16)")
        got = drain(src)
    assert [c.size for c in got] == [c.size for c in expected]
    np.testing.assert_array_equal(np.concatenate(got), np.concatenate(expected))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
@pytest.mark.parametrize("realtime", [False, True])
def test_an_m4a_file_streams_through_ffmpeg(fixtures_dir: Path, tmp_path: Path, realtime: bool) -> None:
    m4a = tmp_path / "talk.m4a"
    command = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(fixtures_dir / "male_1320.wav"), "-t", "1.5"]
    subprocess.run([*command, "-c:a", "aac", "-b:a", "64k", str(m4a)], check=True)
    whole = read_audio(m4a).samples
    with FileSource(m4a, realtime=realtime, chunk_seconds=0.1) as src:
        assert src.sample_rate == 16000 and src.format == "aac in mov" and src.duration is None
        t0 = time.monotonic()
        got = np.concatenate(drain(src, timeout=0.5))
        took = time.monotonic() - t0
    np.testing.assert_array_equal(got, whole)
    if realtime:  # paced at the speed of speech: 1.5 s of it (and AAC's padding) take as long
        assert took >= 1.4


def test_file_sources_warn_once_about_low_rates_and_mixed_talkers(
    tmp_path: Path, fixtures_dir: Path, caplog
) -> None:
    male, female = (read_wav(fixtures_dir / f"{n}.wav")[0] for n in ("male_1320", "female_3575"))
    n = min(male.size, female.size)
    two_talkers = tmp_path / "interview.ogg"
    soundfile.write(two_talkers, np.stack([male[:n], female[:n]], axis=1), 16000)
    phone = tmp_path / "phone.wav"
    write_wav(phone, male[::2], 8000)
    with caplog.at_level(logging.WARNING, logger="voicegender.sources"):
        for path in (two_talkers, phone, fixtures_dir / "male_1320.wav"):
            with FileSource(path, realtime=False, chunk_seconds=0.1) as src:
                drain(src)
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert said[1] == (logging.WARNING, low_rate_warning(str(phone), 8000))
    assert len(said) == 2 and said[0][1].startswith(f"{two_talkers}: its 2 channels carry different sound")


def test_stdin_and_microphones_below_16khz_are_warned_about(fake_sd, caplog, pipe) -> None:
    reader, writer = pipe
    writer.close()
    with caplog.at_level(logging.WARNING, logger="voicegender.sources"):
        with StdinSource(sample_rate=8000, stream=reader):
            pass
        with StdinSource(sample_rate=16000, stream=reader):
            pass
        mic = MicSource(device="usb", sample_rate=11025)
        with mic:
            pass
        with mic:  # reopened (e.g. after it was lost): not said again
            pass
        with MicSource(device="usb"):  # 48 kHz
            pass
    assert [r.getMessage() for r in caplog.records] == [
        low_rate_warning("stdin", 8000),
        low_rate_warning(f"microphone {mic.name!r}", 11025),
    ]


# -- StdinSource ----------------------------------------------------------------------------------------


@pytest.fixture
def pipe():
    r, w = os.pipe()
    reader = os.fdopen(r, "rb")
    writer = os.fdopen(w, "wb", buffering=0)
    yield reader, writer
    for f in (writer, reader):
        if not f.closed:
            f.close()


def test_stdin_odd_chunking_gives_the_same_samples(pipe) -> None:
    reader, writer = pipe
    rng = np.random.default_rng(3)
    pcm = rng.integers(-32768, 32768, 4001).astype("<i2")
    pcm[:4] = [-32768, 32767, 0, 1234]
    data = pcm.tobytes() + b"\x7f"  # a dangling half sample at the end is dropped

    def write_in_odd_pieces() -> None:
        pos = 0
        for size in (1, 3, 2, 5, 1, 7, 333, 1, 1001, 4):
            writer.write(data[pos : pos + size])
            pos += size
            time.sleep(0.005)
        while pos < len(data):
            size = int(rng.integers(1, 900))
            writer.write(data[pos : pos + size])
            pos += size
        writer.close()

    thread = threading.Thread(target=write_in_odd_pieces)
    with StdinSource(sample_rate=16000, chunk_seconds=0.02, stream=reader) as src:
        thread.start()
        chunks = drain(src)
    thread.join()
    got = np.concatenate(chunks)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, pcm16_to_float(pcm.tobytes()))
    np.testing.assert_array_equal(got[:4], np.array([-1.0, 32767 / 32768, 0.0, 1234 / 32768], np.float32))


def test_stdin_timeout_returns_none_without_blocking(pipe) -> None:
    reader, writer = pipe
    with StdinSource(stream=reader) as src:
        t0 = time.monotonic()
        assert src.read(0.2) is None
        assert 0.15 <= time.monotonic() - t0 < 1.0
        t0 = time.monotonic()
        assert src.read(0.0) is None
        assert time.monotonic() - t0 < 0.1
        writer.write(b"\x00")  # half a sample is not a sample yet
        assert src.read(0.2) is None
        writer.write(b"\x40")
        np.testing.assert_array_equal(src.read(1.0), np.array([0x4000 / 32768], np.float32))
        writer.close()
        with pytest.raises(SourceEnded):
            src.read(1.0)
        with pytest.raises(SourceEnded):
            src.read(1.0)


def test_stdin_eof_after_data_returns_the_data_then_ends(pipe) -> None:
    reader, writer = pipe
    writer.write(np.array([100, -200, 300], "<i2").tobytes())
    writer.close()
    with StdinSource(stream=reader) as src:
        got = np.concatenate(drain(src))
    np.testing.assert_array_equal(got, np.array([100, -200, 300], np.float32) / 32768)


def test_stdin_from_a_real_process_pipe(tmp_path: Path) -> None:
    # The `arecord ... | voicegender run --input -` shape: another process writes raw PCM to our stdin.
    pcm = (np.sin(np.arange(3200) / 7) * 20000).astype("<i2")
    raw = tmp_path / "audio.raw"
    raw.write_bytes(pcm.tobytes())
    code = (
        "import sys, numpy as np\n"
        "from voicegender.sources import StdinSource, SourceEnded\n"
        "out = []\n"
        "with StdinSource(16000) as src:\n"
        "    while True:\n"
        "        try:\n"
        "            c = src.read(1.0)\n"
        "        except SourceEnded:\n"
        "            break\n"
        "        if c is not None:\n"
        "            out.append(c)\n"
        "np.save(sys.argv[1], np.concatenate(out))\n"
    )
    result_path = tmp_path / "out.npy"
    with raw.open("rb") as stdin:
        subprocess.run([sys.executable, "-c", code, str(result_path)], stdin=stdin, check=True, timeout=60)
    np.testing.assert_array_equal(np.load(result_path), pcm.astype(np.float32) / 32768)


def test_stdin_rate_is_checked() -> None:
    with pytest.raises(VoicegenderError, match="stdin sample rate"):
        StdinSource(sample_rate=100)


# -- MicSource with a fake sounddevice ------------------------------------------------------------------


class FakePortAudioError(Exception):
    pass


class FakeFlags:
    def __init__(self, input_overflow: bool = False) -> None:
        self.input_overflow = input_overflow


class FakeStream:
    def __init__(self, sd: FakeSoundDevice, **kwargs) -> None:
        self.sd = sd
        self.kwargs = kwargs
        self.started = False
        self.closed = False
        self.broken = False
        sd.streams.append(self)

    @property
    def active(self) -> bool:
        if self.broken:
            raise FakePortAudioError("Unanticipated host error", -9999)
        return self.started and not self.closed

    def start(self) -> None:
        if self.sd.fail_start:
            raise FakePortAudioError("Device unavailable", -9985)
        self.started = True

    def close(self, ignore_errors: bool = True) -> None:
        self.sd.release_close.wait()  # a deadlocked driver never returns from Pa_CloseStream
        self.closed = True

    def deliver(self, block: np.ndarray, overflow: bool = False) -> None:
        block = np.asarray(block, dtype=np.float32)
        self.kwargs["callback"](block, block.shape[0], None, FakeFlags(overflow))

    def finish(self) -> None:
        """What PortAudio does when the device goes away: the stream stops and says so."""
        self.started = False
        self.kwargs["finished_callback"]()


class FakeSoundDevice(types.ModuleType):
    PortAudioError = FakePortAudioError

    def __init__(self, devices: list[dict], default_input: int) -> None:
        super().__init__("sounddevice")
        self.devices = devices
        self.default_input = default_input
        self.streams: list[FakeStream] = []
        self.rescans = 0
        self.fail_start = False
        self.unsupported_rates: set[int] = set()
        self.release_close = threading.Event()
        self.release_close.set()

    def query_devices(self, device=None, kind=None):
        if kind == "input":
            if self.default_input < 0:
                raise FakePortAudioError("Error querying device -1")
            return dict(self.devices[self.default_input], index=self.default_input)
        return [dict(d) for d in self.devices]

    def check_input_settings(self, device=None, channels=None, dtype=None, samplerate=None):
        info = self.devices[device]
        if samplerate in self.unsupported_rates:
            raise FakePortAudioError("Invalid sample rate", -9997)
        if channels not in info.get("channel_choices", range(1, info["max_input_channels"] + 1)):
            raise FakePortAudioError("Invalid number of channels", -9998)

    def InputStream(self, **kwargs) -> FakeStream:
        return FakeStream(self, **kwargs)

    def _terminate(self) -> None:
        self.rescans += 1

    def _initialize(self) -> None:
        pass


def _dev(name: str, inputs: int, rate: float = 44100.0, **extra) -> dict:
    return {
        "name": name,
        "max_input_channels": inputs,
        "max_output_channels": 2,
        "default_samplerate": rate,
    } | extra


@pytest.fixture
def fake_sd(monkeypatch: pytest.MonkeyPatch) -> FakeSoundDevice:
    sd = FakeSoundDevice(
        [
            _dev("HDMI output", 0, 48000.0),
            _dev("USB PnP Sound Device: Audio (hw:1,0)", 1, 48000.0),
            _dev("seeed-2mic-voicecard: bcm2835-i2s (hw:2,0)", 2, 16000.0, channel_choices=[2]),
            _dev("default", 32),
        ],
        default_input=3,
    )
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    return sd


def test_importing_sources_does_not_import_sounddevice() -> None:
    code = "import sys, voicegender.sources; assert 'sounddevice' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("device", "index"),
    [("usb pnp", 1), ("seeed", 2), ("default", 3), (1, 1), ("2", 2), (None, 3), ("USB PnP Sound Device", 1)],
)
def test_mic_device_is_chosen_by_name_or_index(fake_sd: FakeSoundDevice, device, index: int) -> None:
    with MicSource(device=device) as mic:
        stream = fake_sd.streams[-1]
        assert stream.kwargs["device"] == index
        assert mic.name == fake_sd.devices[index]["name"]
        assert (
            mic.sample_rate
            == stream.kwargs["samplerate"]
            == int(fake_sd.devices[index]["default_samplerate"])
        )
        assert stream.kwargs["blocksize"] == round(mic.sample_rate * 0.1)
    assert stream.closed


def test_mic_given_rate_is_used(fake_sd: FakeSoundDevice) -> None:
    mic = MicSource(device="usb", sample_rate=16000, chunk_seconds=0.05)
    assert mic.sample_rate == 16000  # known before open when requested
    with mic:
        assert fake_sd.streams[-1].kwargs["samplerate"] == 16000
        assert fake_sd.streams[-1].kwargs["blocksize"] == 800


@pytest.mark.parametrize("device", ["webcam", 0, 7, "99"])
def test_mic_no_match_lists_the_input_devices(fake_sd: FakeSoundDevice, device) -> None:
    with pytest.raises(VoicegenderError) as info:
        MicSource(device=device).open()
    message = str(info.value)
    assert not isinstance(info.value, SourceLost)
    assert (
        "USB PnP Sound Device" in message and "seeed-2mic-voicecard" in message and "[3] default" in message
    )
    assert "HDMI output" not in message  # output-only devices are not offered
    assert not fake_sd.streams


def test_mic_ambiguous_name_is_an_error(fake_sd: FakeSoundDevice) -> None:
    with pytest.raises(VoicegenderError, match="several input devices"):
        MicSource(device="hw:").open()


def test_mic_no_default_input_is_an_error(fake_sd: FakeSoundDevice) -> None:
    fake_sd.default_input = -1
    with pytest.raises(VoicegenderError, match=r"no default input device.*USB PnP"):
        MicSource().open()


def test_mic_blocks_come_out_mono_float32_in_order(fake_sd: FakeSoundDevice) -> None:
    with MicSource(device="seeed") as mic:  # this card only records 2 channels
        stream = fake_sd.streams[-1]
        assert stream.kwargs["channels"] == 2
        left = np.linspace(-1, 1, 1600, dtype=np.float32)
        right = np.full(1600, 0.5, dtype=np.float32)
        block = np.stack([left, right], axis=1)
        stream.deliver(block)
        block[:] = 0  # PortAudio reuses its buffer: the source must have copied it
        got = mic.read(0.5)
        assert got.dtype == np.float32 and got.shape == (1600,)
        np.testing.assert_allclose(got, (left + right) / 2, atol=1e-7)
        assert mic.read(0.05) is None


def test_mic_full_queue_drops_oldest_and_counts_overflows(fake_sd: FakeSoundDevice) -> None:
    with MicSource(device="usb", queue_chunks=3) as mic:
        stream = fake_sd.streams[-1]
        assert stream.kwargs["channels"] == 1
        for k in range(5):
            stream.deliver(np.full((4800, 1), k / 10))
        assert mic.overflows == 2
        got = [mic.read(0.1)[0] for _ in range(3)]
        np.testing.assert_allclose(got, [0.2, 0.3, 0.4], rtol=1e-6)
        stream.deliver(np.zeros((4800, 1)), overflow=True)  # PortAudio's own input overflow flag
        assert mic.overflows == 3


def test_mic_device_loss_raises_source_lost_after_queued_audio(fake_sd: FakeSoundDevice) -> None:
    with MicSource(device="usb") as mic:
        stream = fake_sd.streams[-1]
        stream.deliver(np.full((4800, 1), 0.25))
        stream.finish()
        assert mic.read(0.1)[0] == pytest.approx(0.25)  # audio from before the loss is still delivered
        t0 = time.monotonic()
        with pytest.raises(SourceLost, match="USB PnP Sound Device"):
            mic.read(5.0)
        assert time.monotonic() - t0 < 1.0
        assert stream.closed
        with pytest.raises(SourceLost):
            mic.read(0.1)


def test_mic_portaudio_error_raises_source_lost(fake_sd: FakeSoundDevice) -> None:
    with MicSource(device="usb") as mic:
        fake_sd.streams[-1].broken = True
        with pytest.raises(SourceLost, match=r"USB PnP Sound Device.*host error"):
            mic.read(0.3)


def test_mic_silence_from_an_active_stream_raises_source_lost(fake_sd: FakeSoundDevice) -> None:
    with MicSource(device="usb", chunk_seconds=0.05, stall_seconds=0.3, start_seconds=0.5) as mic:
        stream = fake_sd.streams[-1]
        stream.deliver(np.zeros((2400, 1)))
        assert mic.read(0.1) is not None
        assert mic.read(0.1) is None  # a short gap is not a loss
        t0 = time.monotonic()
        with pytest.raises(SourceLost, match="no audio for"):
            mic.read(5.0)
        assert 0.15 <= time.monotonic() - t0 < 1.5


def test_mic_that_never_starts_raises_source_lost(fake_sd: FakeSoundDevice) -> None:
    with MicSource(device="usb", chunk_seconds=0.05, stall_seconds=0.2, start_seconds=0.4) as mic:
        assert mic.read(0.1) is None  # drivers may take a moment to start
        with pytest.raises(SourceLost, match="no audio within"):
            mic.read(5.0)


def test_mic_start_failure_is_source_lost_and_bad_rate_is_a_config_error(fake_sd: FakeSoundDevice) -> None:
    fake_sd.fail_start = True
    with pytest.raises(SourceLost, match=r"USB PnP.*Device unavailable"):
        MicSource(device="usb").open()
    assert fake_sd.streams[-1].closed
    fake_sd.fail_start = False
    fake_sd.unsupported_rates = {22050}
    with pytest.raises(VoicegenderError, match="cannot record at 22050 Hz") as info:
        MicSource(device="usb", sample_rate=22050).open()
    assert not isinstance(info.value, SourceLost)


def test_mic_reopen_after_loss_rescans_devices(fake_sd: FakeSoundDevice) -> None:
    mic = MicSource(device="usb")
    mic.open()
    assert fake_sd.rescans == 1
    with MicSource(device="default"):
        assert fake_sd.rescans == 1  # never re-initialise PortAudio under an open stream
    fake_sd.streams[0].finish()
    with pytest.raises(SourceLost):
        mic.read(1.0)
    unplugged = fake_sd.devices.pop(1)
    with pytest.raises(SourceLost, match="no input device matches 'usb'"):
        mic.open()  # it worked before, so its absence is a loss worth retrying, not a config error
    fake_sd.devices.insert(1, unplugged)
    mic.open()
    assert fake_sd.rescans == 3
    fake_sd.streams[-1].deliver(np.full((4800, 1), 0.5))
    assert mic.read(0.5)[0] == 0.5
    mic.close()
    mic.close()


def test_mic_whose_driver_hangs_on_close_is_abandoned_not_waited_for(
    fake_sd: FakeSoundDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The abandoned stream stays counted as open for the rest of the process: undo that afterwards.
    monkeypatch.setattr(sources, "_open_streams", sources._open_streams)
    monkeypatch.setattr(sources, "_abandoned", [])
    mic = MicSource(device="usb", close_seconds=0.3)
    mic.open()
    stream = fake_sd.streams[-1]
    fake_sd.release_close.clear()
    stream.finish()
    t0 = time.monotonic()
    with pytest.raises(SourceLost, match="did not let go"):
        mic.read(5.0)
    assert time.monotonic() - t0 < 2.0
    rescans = fake_sd.rescans
    mic.open()  # retrying works, without re-initialising PortAudio under the stuck stream
    assert fake_sd.rescans == rescans
    fake_sd.release_close.set()
    mic.close()


def test_list_input_devices(fake_sd: FakeSoundDevice) -> None:
    devices = list_input_devices()
    assert [d["index"] for d in devices] == [1, 2, 3]
    assert devices[0] == {
        "index": 1,
        "name": "USB PnP Sound Device: Audio (hw:1,0)",
        "channels": 1,
        "default_samplerate": 48000.0,
        "is_default": False,
    }
    assert [d["is_default"] for d in devices] == [False, False, True]


def test_missing_sounddevice_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(VoicegenderError, match="sounddevice is not installed"):
        MicSource().open()


def test_missing_portaudio_library_says_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # sounddevice raises OSError at import time when libportaudio2 is absent.
    (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(VoicegenderError, match="apt install libportaudio2"):
        list_input_devices()


# -- open_source ----------------------------------------------------------------------------------------


def test_open_source_picks_the_source(tone_wav: Path) -> None:
    stdin = open_source("-", sample_rate=8000, chunk_seconds=0.05)
    assert isinstance(stdin, StdinSource) and stdin.sample_rate == 8000
    assert open_source("-").sample_rate == 16000
    mic = open_source("mic", device="usb", sample_rate=16000, queue_chunks=7)
    assert isinstance(mic, MicSource) and (mic.device, mic.sample_rate, mic.queue_chunks) == ("usb", 16000, 7)
    wav = open_source(str(tone_wav), realtime=False, chunk_seconds=0.2)
    assert isinstance(wav, FileSource) and not wav.realtime and wav.sample_rate == 8000
    with wav:
        assert wav.read(0.1).size == 1600


def test_open_source_rejects_unknown_inputs(tmp_path: Path) -> None:
    with pytest.raises(VoicegenderError, match="expected '-'"):
        open_source("microphone")
    for name in ("missing.wav", "missing.flac", "missing.m4a"):
        with pytest.raises(VoicegenderError, match=r"missing\.\w+: no such file"):
            open_source(str(tmp_path / name))
    raw = tmp_path / "speech.raw"
    raw.write_bytes(b"\x00\x01" * 100)
    with pytest.raises(VoicegenderError, match=r"speech\.raw"):
        open_source(str(raw))


def test_end_of_input_is_not_an_error_but_a_lost_mic_is() -> None:
    # The CLI reports VoicegenderErrors to the user; the end of a file or stdin must not look like one.
    assert issubclass(SourceLost, VoicegenderError)
    assert not issubclass(SourceEnded, VoicegenderError)

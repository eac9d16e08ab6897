"""Audio files of every format people have: the same decision as the WAV, the fallbacks, the warnings.

The compressed clips are made at test time from the fixture WAVs. Codec tolerance: the shipped
model's clip decision on a lossy copy moves by a few tenths in log-odds. Measured on 62 clips
(the two fixtures, 40 LibriSpeech speakers, 20 EmoDB clips) encoded exactly as below and decoded by
soundfile and by ffmpeg, |change in log-odds of p_female| was median 0.07-0.33, 99th percentile
1.15, largest 1.67 (MP3 at ~60 kbps); the fixtures themselves moved at most 0.73. The bound
``MAX_LOGODDS_CHANGE`` = 1.5 sits above the 99th percentile, so another libsndfile or ffmpeg
version's encoder passes, while a wrong decoding (wrong rate, channels, scaling or a cut-off band:
the same MP3 at ~24 kbps, which drops everything above 4-5 kHz, moved clips by up to 5.5) fails.
The fixtures sit at log-odds -2.3 (man) and +3.0 (woman), so within the bound the label holds.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicegender.audiofile import (
    AudioFile,
    AudioFileError,
    ChannelCheck,
    low_rate_warning,
    read_audio,
    readable_formats,
)
from voicegender.cli import main
from voicegender.config import Config
from voicegender.errors import VoicegenderError
from voicegender.model import load_model
from voicegender.pipeline import classify_audio
from voicegender.wavio import read_wav, write_wav

MAX_LOGODDS_CHANGE = 1.5
HAVE_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="needs ffmpeg and ffprobe on PATH")
SPEAKERS = ("male_1320", "female_3575")
# (suffix, soundfile format, subtype, compression level): about 50-60 kbit/s for the lossy ones.
SOUNDFILE_CODECS = {
    "flac": ("flac", "FLAC", "PCM_16", None),
    "vorbis": ("ogg", "OGG", "VORBIS", 0.3),
    "opus": ("opus", "OGG", "OPUS", 0.8),
    "mp3": ("mp3", "MP3", "MPEG_LAYER_III", 0.1),
}
# ~33 kbit/s: low-bitrate MP3 leans on the bit reservoir, which libsndfile loses between reads.
LOW_MP3 = ("mp3", "MP3", "MPEG_LAYER_III", 0.5)
FORMATS = [*SOUNDFILE_CODECS, pytest.param("m4a", marks=needs_ffmpeg)]


def _encode(wav: Path, codec: str, out_dir: Path) -> Path:
    if codec == "m4a":
        out = out_dir / f"{wav.stem}.m4a"
        command = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "64k"]
        subprocess.run([*command, str(out)], check=True)
        return out
    suffix, fmt, subtype, level = LOW_MP3 if codec == "mp3_low" else SOUNDFILE_CODECS[codec]
    out = out_dir / f"{wav.stem}.{codec}.{suffix}"
    audio, rate = read_wav(wav)
    extra = {} if level is None else {"compression_level": level}
    soundfile.write(out, audio, rate, format=fmt, subtype=subtype, **extra)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> dict[tuple[str, str], Path]:
    """(speaker, codec) -> the fixture recording in that format (m4a only with ffmpeg)."""
    out = tmp_path_factory.mktemp("clips")
    codecs = [*SOUNDFILE_CODECS, *(["m4a"] if HAVE_FFMPEG else [])]
    return {(s, c): _encode(fixtures_dir / f"{s}.wav", c, out) for s in SPEAKERS for c in codecs}


@pytest.fixture(scope="module")
def model():
    return load_model()


def _decide(audio: np.ndarray, rate: int, model) -> tuple[str, float]:
    config = Config()
    d = classify_audio(audio, rate, model, config.vad, config.decision)
    return d.label, d.p_female


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# -- every format, the same decision -------------------------------------------------------------------


@pytest.mark.parametrize("codec", FORMATS)
@pytest.mark.parametrize("speaker", SPEAKERS)
def test_each_format_gives_the_wavs_decision(clips, fixtures_dir: Path, model, speaker, codec) -> None:
    wav, rate = read_wav(fixtures_dir / f"{speaker}.wav")
    decoded = read_audio(clips[speaker, codec])
    assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 1
    assert decoded.warnings == ()
    # Codecs pad the start and end (AAC by about 60 ms); the rate may be the codec's own (Opus: 48 kHz).
    assert abs(decoded.samples.size / decoded.sample_rate - wav.size / rate) < 0.1
    label, p = _decide(decoded.samples, decoded.sample_rate, model)
    wav_label, wav_p = _decide(wav, rate, model)
    assert label == wav_label == speaker.split("_")[0]
    assert abs(_logit(p) - _logit(wav_p)) <= MAX_LOGODDS_CHANGE, (p, wav_p)


@pytest.mark.parametrize("speaker", SPEAKERS)
def test_flac_decodes_to_exactly_the_wav(clips, fixtures_dir: Path, speaker: str) -> None:
    wav, _ = read_wav(fixtures_dir / f"{speaker}.wav")
    with AudioFile(clips[speaker, "flac"]) as f:
        assert (f.decoder, f.sample_rate, f.channels, f.n_frames) == ("soundfile", 16000, 1, wav.size)
        assert f.format.startswith("FLAC")
        np.testing.assert_array_equal(f.read(), wav)


@needs_ffmpeg
@pytest.mark.parametrize("codec", [*SOUNDFILE_CODECS, "m4a"])
def test_ffmpeg_decodes_every_format_the_same_way(clips, fixtures_dir: Path, model, codec: str) -> None:
    speaker = "male_1320"
    wav, rate = read_wav(fixtures_dir / f"{speaker}.wav")
    with AudioFile(clips[speaker, codec], decoders=("ffmpeg",)) as f:
        assert f.decoder == "ffmpeg" and f.n_frames is None
        audio = f.read()
    if codec == "flac":
        np.testing.assert_array_equal(audio, wav)
    label, p = _decide(audio, f.sample_rate, model)
    wav_label, wav_p = _decide(wav, rate, model)
    assert label == wav_label and abs(_logit(p) - _logit(wav_p)) <= MAX_LOGODDS_CHANGE


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> dict[str, Path]:
    """20 s at 16 kHz (several of libsndfile's read blocks) in each lossy format."""
    out = tmp_path_factory.mktemp("long")
    parts = [read_wav(fixtures_dir / f"{s}.wav")[0] for s in SPEAKERS]
    wav = out / "long.wav"
    write_wav(wav, np.tile(np.concatenate(parts), 2), 16000)
    return {codec: _encode(wav, codec, out) for codec in ("vorbis", "opus", "mp3", "mp3_low")}


@pytest.mark.parametrize("codec", ["vorbis", "opus", "mp3", "mp3_low"])
def test_chunked_reads_equal_the_whole_file_and_stderr_stays_clean(long_clips, codec: str, capfd) -> None:
    # libsndfile itself decodes MP3 wrongly when reads end inside a frame (and Opus when read a
    # frame at a time); AudioFile must give the same samples for any chunking, without mpg123's noise.
    path = long_clips[codec]
    whole = read_audio(path).samples
    assert abs(whole.size / 16000 - 20.0) < 0.1
    for chunk in (7, 777, 4410, 10**6):
        with AudioFile(path) as f:
            parts = []
            while (part := f.read(chunk)).size:
                assert part.size <= chunk
                parts.append(part)
            assert f.position == whole.size and f.read(5).size == 0
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert capfd.readouterr().err == ""


def test_a_cut_off_mp3_reads_without_noise_on_stderr(long_clips, tmp_path: Path, capfd) -> None:
    data = long_clips["mp3_low"].read_bytes()
    path = tmp_path / "cut.mp3"
    path.write_bytes(data[: len(data) // 3])  # its header still claims the whole length
    assert 5.0 < read_audio(path).samples.size / 16000 < 8.0
    assert capfd.readouterr().err == ""


@needs_ffmpeg
@pytest.mark.parametrize("codec", ["vorbis", "mp3", "mp3_low"])
def test_soundfile_and_ffmpeg_decode_long_files_alike(long_clips, codec: str) -> None:
    """Two independent decoders agree to float rounding (Opus is left out: ffmpeg decodes it at 48 kHz)."""
    path = long_clips[codec]
    via_soundfile, via_ffmpeg = read_audio(path, ("soundfile",)), read_audio(path, ("ffmpeg",))
    assert via_soundfile.sample_rate == via_ffmpeg.sample_rate == 16000
    np.testing.assert_allclose(via_soundfile.samples, via_ffmpeg.samples, rtol=0, atol=1e-5)


@needs_ffmpeg
@pytest.mark.parametrize("chunk", [1, 777, 10**6])
def test_ffmpeg_chunked_reads_equal_the_whole_file(clips, chunk: int) -> None:
    path = clips["female_3575", "m4a"]
    whole = read_audio(path).samples
    with AudioFile(path) as f:
        assert f.decoder == "ffmpeg"
        parts = []
        while (part := f.read(chunk)).size:
            parts.append(part)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_wavs_in_encodings_the_numpy_parser_refuses_go_to_soundfile(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    audio = rng.uniform(-0.5, 0.5, 4000)
    for subtype in ("ULAW", "ALAW", "IMA_ADPCM"):
        path = tmp_path / f"{subtype}.wav"
        soundfile.write(path, audio, 8000, format="WAV", subtype=subtype)
        with AudioFile(path) as f:
            assert f.decoder == "soundfile" and f.sample_rate == 8000
            got = f.read()
        np.testing.assert_array_equal(got, soundfile.read(path, dtype="float32")[0])


def test_reading_a_wav_does_not_load_soundfile(fixtures_dir: Path) -> None:
    """WAV stays numpy-only: the daemon's memory and start-up are as before for WAV input."""
    code = (
        "import sys; from voicegender.audiofile import read_audio; "
        f"read_audio({str(fixtures_dir / 'male_1320.wav')!r}); print('soundfile' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# -- when decoders are missing -------------------------------------------------------------------------


@pytest.fixture
def no_soundfile(monkeypatch):
    monkeypatch.setitem(sys.modules, "soundfile", None)  # `import soundfile` raises ImportError


@pytest.fixture
def no_ffmpeg(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))


@needs_ffmpeg
def test_without_soundfile_ffmpeg_reads_the_file(clips, fixtures_dir: Path, no_soundfile) -> None:
    wav, _ = read_wav(fixtures_dir / "female_3575.wav")
    with AudioFile(clips["female_3575", "flac"]) as f:
        assert f.decoder == "ffmpeg"
        np.testing.assert_array_equal(f.read(), wav)
    assert readable_formats() == "WAV and anything ffmpeg decodes (M4A/AAC, WebM, AMR, ...)"


def test_without_soundfile_and_ffmpeg_one_line_names_the_file_and_what_is_readable(
    clips, fixtures_dir: Path, no_soundfile, no_ffmpeg
) -> None:
    for codec, kind in [("flac", "FLAC"), ("opus", "Ogg Opus"), ("mp3", "MP3")]:
        path = clips["male_1320", codec]
        with pytest.raises(AudioFileError) as err:
            read_audio(path)
        message = str(err.value)
        assert message.startswith(f"{path}: {kind} audio, and this installation reads WAV only: ")
        assert "pip install soundfile" in message and "apt install ffmpeg" in message
        assert "\n" not in message
    # WAV needs neither.
    assert read_audio(fixtures_dir / "male_1320.wav").sample_rate == 16000
    assert readable_formats() == "WAV only"


def test_a_wav_encoding_only_soundfile_reads_names_the_encoding_and_the_fix(
    tmp_path: Path, monkeypatch
) -> None:
    path = tmp_path / "alaw.wav"
    soundfile.write(path, np.zeros(800), 8000, subtype="ALAW")
    monkeypatch.setitem(sys.modules, "soundfile", None)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(AudioFileError) as err:
        read_audio(path)
    message = str(err.value)
    assert message.startswith(f"{path}: unsupported encoding: A-law (format tag 0x0006)")
    assert "reading it needs soundfile or ffmpeg" in message and "pip install soundfile" in message


@needs_ffmpeg
def test_m4a_without_ffmpeg_says_what_soundfile_reads(clips, no_ffmpeg) -> None:
    path = clips["male_1320", "m4a"]
    with pytest.raises(AudioFileError) as err:
        read_audio(path)
    message = str(err.value)
    assert message.startswith(f"{path}: cannot decode this MP4/M4A audio (soundfile: ")
    assert "this installation reads WAV, FLAC, Ogg Vorbis, Ogg Opus, MP3" in message
    assert message.endswith("ffmpeg (`sudo apt install ffmpeg`) reads more") and "\n" not in message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "file is empty"),
        (b"this is not audio\n" * 40, "cannot decode it (soundfile: "),
        (b"fLaC" + bytes(200), "cannot decode this FLAC audio (soundfile: "),
    ],
)
def test_unreadable_files_are_one_line_naming_them(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "bad.flac"
    path.write_bytes(content)
    with pytest.raises(VoicegenderError) as err:
        read_audio(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and fragment in message and "\n" not in message
    if HAVE_FFMPEG and content:
        assert "; ffmpeg: " in message


@needs_ffmpeg
def test_a_truncated_m4a_is_an_error_naming_it(clips, tmp_path: Path) -> None:
    data = clips["male_1320", "m4a"].read_bytes()
    path = tmp_path / "cut.m4a"
    path.write_bytes(data[: len(data) // 2])  # ends inside the audio (or loses the index)
    with pytest.raises(VoicegenderError) as err:
        read_audio(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    for path, fragment in [(tmp_path / "nope.ogg", "no such file"), (tmp_path, "is a directory")]:
        with pytest.raises(AudioFileError, match=fragment):
            read_audio(path)


# -- warnings: below 16 kHz ----------------------------------------------------------------------------


def test_low_rate_warning_names_the_missing_band() -> None:
    assert low_rate_warning("call.wav", 8000) == (
        "call.wav: 8000 Hz audio lacks the 4-8 kHz band the model uses; expect lower accuracy"
    )
    assert "5.51-8 kHz" in low_rate_warning("x", 11025)
    assert low_rate_warning("x", 16000) is None and low_rate_warning("x", 44100) is None


def test_an_8khz_file_is_warned_about_once(tmp_path: Path, fixtures_dir: Path) -> None:
    audio, _ = read_wav(fixtures_dir / "male_1320.wav")
    path = tmp_path / "phone.flac"
    soundfile.write(path, audio[::2], 8000)  # crude, but a rate is a rate
    assert read_audio(path).warnings == (low_rate_warning(str(path), 8000),)
    with AudioFile(path) as f:
        assert f.take_warnings() == [low_rate_warning(str(path), 8000)]
        f.read()
        assert f.take_warnings() == []


# -- warnings: channels --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voices(fixtures_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    m, _ = read_wav(fixtures_dir / "male_1320.wav")
    f, _ = read_wav(fixtures_dir / "female_3575.wav")
    n = min(m.size, f.size)
    return m[:n], f[:n]


def _stereo_cases(m: np.ndarray, f: np.ndarray) -> dict[str, tuple[np.ndarray, bool]]:
    """name -> ((samples, channels) at 16 kHz, whether the channels differ materially)."""
    rng = np.random.default_rng(0)

    def noise(db: float) -> np.ndarray:
        return 10 ** (db / 20) * rng.standard_normal(m.size)

    room = np.exp(-np.arange(800) / 160.0) * rng.standard_normal(800)
    room[0] = 3.0
    room /= np.abs(room).sum() / 3
    reverb = np.convolve(m, room)[: m.size]
    z = np.zeros_like(m)
    cases = {
        "panned": ((m, 0.6 * m), False),
        "two microphones, one talker": ((m + noise(-50), 0.5 * np.roll(reverb, 48) + noise(-50)), False),
        "two microphones, noisy": ((m + noise(-35), 0.7 * np.roll(reverb, 30) + noise(-35)), False),
        "one channel silent": ((m, z), False),
        "one channel dither": ((m, noise(-90)), False),
        "two talkers at once": ((m, f), True),
        "two talkers in turn": ((np.r_[m, 0.1 * f], np.r_[0.1 * m, f]), True),
        "talker and a noise track": ((m, noise(-25)), True),
    }
    return {k: (np.stack(chans, axis=1).astype(np.float32), differ) for k, (chans, differ) in cases.items()}


def test_channel_check_tells_one_talker_from_two(voices) -> None:
    results = {}
    for name, (audio, differ) in _stereo_cases(*voices).items():
        check = ChannelCheck(16000, 2)
        check.push(audio)
        check.finish()
        results[name] = check.correlation
        assert check.differ == differ, (name, check.correlation)
    # The margins the class docstring quotes.
    one_talker = [results[k] for k in ("panned", "two microphones, one talker", "two microphones, noisy")]
    assert min(one_talker) > 0.8
    assert max(results[k] for k in ("two talkers at once", "two talkers in turn")) < 0.0
    assert results["one channel silent"] is None and results["one channel dither"] is None


@pytest.mark.parametrize("chunk", [1, 333, 1600, 10**6])
def test_channel_check_is_the_same_in_any_chunks(voices, chunk: int) -> None:
    audio = _stereo_cases(*voices)["two microphones, noisy"][0]
    whole = ChannelCheck(16000, 2)
    whole.push(audio)
    whole.finish()
    parts = ChannelCheck(16000, 2)
    for i in range(0, len(audio), chunk):
        parts.push(audio[i : i + chunk])
    parts.finish()
    assert parts.correlation == pytest.approx(whole.correlation, abs=1e-9)


def test_channel_check_decides_on_the_first_stretch_of_sound(voices) -> None:
    m, f = voices
    long = np.tile(np.stack([m, f], axis=1), (8, 1))  # 40 s of two talkers
    check = ChannelCheck(16000, 2, decide_seconds=10.0)
    for i in range(0, len(long), 1600):
        check.push(long[i : i + 1600])
        if check.decided:
            break
    assert check.decided and check.differ and i < 20 * 16000


def test_a_stereo_file_with_two_talkers_is_warned_about_once(tmp_path: Path, voices) -> None:
    cases = _stereo_cases(*voices)
    two, one = tmp_path / "interview.flac", tmp_path / "desk.wav"
    soundfile.write(two, cases["two talkers at once"][0], 16000)
    write_wav(one, cases["two microphones, one talker"][0], 16000)
    warnings = read_audio(two).warnings
    assert len(warnings) == 1 and warnings[0].startswith(f"{two}: its 2 channels carry different sound")
    assert "pan=mono|c0=c0" in warnings[0]
    assert read_audio(one).warnings == ()
    with AudioFile(two) as f:  # read in chunks: said once, when decided (here at the end)
        said = []
        while f.read(4000).size:
            said += f.take_warnings()
        said += f.take_warnings()
    assert said == list(warnings)


# -- classify ------------------------------------------------------------------------------------------


def test_classify_reads_every_format_and_keeps_one_json_line_per_input(
    clips, tmp_path: Path, voices, capsys
) -> None:
    phone = tmp_path / "phone.wav"
    write_wav(phone, voices[0][::2], 8000)
    broken = tmp_path / "broken.mp3"
    broken.write_text("not audio at all\n" * 20)
    files = [clips["male_1320", "flac"], broken, clips["female_3575", "opus"], phone]
    assert main(["classify", "--json", *map(str, files)]) == 1
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in records] == list(map(str, files))
    assert [r.get("label") for r in records] == ["male", None, "female", "male"]
    errors = [line for line in err.splitlines() if line.startswith("voicegender: error: ")]
    assert errors == [f"voicegender: error: {records[1]['error']}"]
    assert records[1]["error"].startswith(f"{broken}: cannot decode")
    warnings = [line for line in err.splitlines() if line.startswith("voicegender: warning: ")]
    assert warnings == [f"voicegender: warning: {low_rate_warning(str(phone), 8000)}"]

"""WAV reading without scipy: every supported encoding, awkward layouts, and every bad input."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicegender.errors import VoicegenderError
from voicegender.wavio import Pcm16Decoder, WavError, WavReader, pcm16_to_float, read_wav, write_wav

PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def chunk(chunk_id: bytes, body: bytes, declared: int | None = None) -> bytes:
    size = len(body) if declared is None else declared
    return struct.pack("<4sI", chunk_id, size) + body + (b"\x00" if len(body) % 2 else b"")


def fmt_body(
    tag: int = PCM,
    channels: int = 1,
    rate: int = 16000,
    bits: int = 16,
    block_align: int | None = None,
    sub_tag: int | None = None,
    valid_bits: int | None = None,
) -> bytes:
    if block_align is None:
        block_align = channels * ((bits + 7) // 8)
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * block_align, block_align, bits)
    if sub_tag is not None:
        guid = struct.pack("<H", sub_tag) + GUID_TAIL
        body += struct.pack("<HHI", 22, bits if valid_bits is None else valid_bits, 0) + guid
    return body


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return struct.pack("<4sI", b"RIFF", len(body)) + body


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def pcm16_bytes(values: list[int]) -> bytes:
    return np.asarray(values, dtype="<i2").tobytes()


# -- decoding -----------------------------------------------------------------------------------


SOUNDFILE_FORMATS = [
    (container, subtype)
    for container in ("WAV", "WAVEX")
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")
]


@pytest.mark.parametrize(("container", "subtype"), SOUNDFILE_FORMATS)
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_matches_soundfile_for_every_supported_encoding(
    tmp_path: Path, container: str, subtype: str, channels: int
) -> None:
    rng = np.random.default_rng(channels)
    audio = rng.uniform(-1, 1, (3001, channels))
    path = tmp_path / f"{container}_{subtype}.wav"
    soundfile.write(path, audio, 22050, format=container, subtype=subtype)
    ref, ref_rate = soundfile.read(path, dtype="float64", always_2d=True)
    got, rate = read_wav(path)
    assert rate == ref_rate == 22050
    assert got.dtype == np.float32 and got.shape == (3001,)
    np.testing.assert_allclose(got, ref.mean(axis=1), rtol=0, atol=1e-6)


def test_write_then_read_round_trips_16_bit_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    audio = rng.integers(-32768, 32768, 5000).astype(np.float32) / 32768
    write_wav(tmp_path / "a.wav", audio, 44100)
    got, rate = read_wav(tmp_path / "a.wav")
    assert rate == 44100
    np.testing.assert_array_equal(got, audio)
    ref, _ = soundfile.read(tmp_path / "a.wav", dtype="float32")
    np.testing.assert_array_equal(got, ref)


def test_write_clips_and_downmix_is_the_channel_mean(tmp_path: Path) -> None:
    stereo = np.array([[0.5, -0.25], [2.0, 1.0], [-3.0, 0.0]])
    write_wav(tmp_path / "s.wav", stereo, 8000)
    got, _ = read_wav(tmp_path / "s.wav")
    np.testing.assert_allclose(got, [0.125, 32767 / 32768, -0.5], atol=1e-7)


def test_8_bit_is_unsigned_around_128(tmp_path: Path) -> None:
    path = write(
        tmp_path / "u8.wav", riff(chunk(b"fmt ", fmt_body(bits=8)), chunk(b"data", bytes([0, 64, 128, 255])))
    )
    got, _ = read_wav(path)
    np.testing.assert_array_equal(got, np.array([-1.0, -0.5, 0.0, 127 / 128], dtype=np.float32))


def test_24_bit_sign_and_scale(tmp_path: Path) -> None:
    values = [-(2**23), -1, 0, 1, 2**22, 2**23 - 1]
    data = b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    path = write(tmp_path / "p24.wav", riff(chunk(b"fmt ", fmt_body(bits=24)), chunk(b"data", data)))
    got, _ = read_wav(path)
    np.testing.assert_array_equal(got, np.array(values, dtype=np.float64) / 2**23)


def test_extensible_header_with_fewer_valid_bits_than_container(tmp_path: Path) -> None:
    # 20 valid bits in 24-bit containers, left-justified: scaled by the container's full scale.
    values = [-(2**23), 2**23 - 16, 16 * 1000]
    data = b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    fmt = fmt_body(EXTENSIBLE, bits=24, sub_tag=PCM, valid_bits=20)
    got, _ = read_wav(write(tmp_path / "x.wav", riff(chunk(b"fmt ", fmt), chunk(b"data", data))))
    np.testing.assert_array_equal(got, np.array(values, dtype=np.float64) / 2**23)


def test_extensible_float_subformat(tmp_path: Path) -> None:
    data = np.array([0.5, -0.25, 0.125, 0.0], dtype="<f4").tobytes()
    fmt = fmt_body(EXTENSIBLE, channels=2, bits=32, sub_tag=FLOAT)
    got, _ = read_wav(write(tmp_path / "f.wav", riff(chunk(b"fmt ", fmt), chunk(b"data", data))))
    np.testing.assert_array_equal(got, [0.125, 0.0625])


def test_odd_chunks_are_padded_and_unknown_chunks_skipped(tmp_path: Path) -> None:
    list_chunk = chunk(b"LIST", b"INFOISFT" + struct.pack("<I", 5) + b"test\x00")  # odd length: padded
    data = riff(
        chunk(b"junk", b"abc"),  # odd: followed by a pad byte
        chunk(b"fmt ", fmt_body(bits=8) + b"\x00\x00"),  # 18-byte fmt with cbSize = 0
        list_chunk,
        chunk(b"data", bytes([128, 255, 0])),  # odd data chunk
        chunk(b"id3 ", b"after the data"),
    )
    got, rate = read_wav(write(tmp_path / "odd.wav", data))
    assert rate == 16000
    np.testing.assert_array_equal(got, np.array([0.0, 127 / 128, -1.0], dtype=np.float32))
    ref, _ = soundfile.read(tmp_path / "odd.wav", dtype="float32")
    np.testing.assert_array_equal(got, ref)


def test_streaming_writer_placeholder_sizes_read_to_end_of_file(tmp_path: Path) -> None:
    samples = [1000, -1000, 32767]
    for placeholder in (0xFFFFFFFF, 0x7FFFF000):
        data = riff(chunk(b"fmt ", fmt_body()), chunk(b"data", pcm16_bytes(samples), declared=placeholder))
        got, _ = read_wav(write(tmp_path / "pipe.wav", data))
        np.testing.assert_array_equal(got, np.array(samples, dtype=np.float32) / 32768)


def test_trailing_partial_frame_is_ignored(tmp_path: Path) -> None:
    data = riff(chunk(b"fmt ", fmt_body(channels=2)), chunk(b"data", pcm16_bytes([100, 300, 500])))
    got, _ = read_wav(write(tmp_path / "partial.wav", data))
    np.testing.assert_array_equal(got, np.array([200 / 32768], dtype=np.float32))


def test_float_samples_are_clipped_to_unit_range(tmp_path: Path) -> None:
    data = np.array([1.5, -2.0, 0.5], dtype="<f8").tobytes()
    got, _ = read_wav(
        write(tmp_path / "f64.wav", riff(chunk(b"fmt ", fmt_body(FLOAT, bits=64)), chunk(b"data", data)))
    )
    np.testing.assert_array_equal(got, [1.0, -1.0, 0.5])


def test_real_fixture_matches_soundfile(fixtures_dir: Path) -> None:
    path = fixtures_dir / "female_3575.wav"
    got, rate = read_wav(path)
    ref, ref_rate = soundfile.read(path, dtype="float32")
    assert rate == ref_rate == 16000
    np.testing.assert_array_equal(got, ref)


# -- chunked reading ----------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [1, 7, 1000, 10**6])
def test_reader_chunks_equal_whole_file(tmp_path: Path, frames: int) -> None:
    rng = np.random.default_rng(frames)
    audio = rng.uniform(-1, 1, (3000 if frames == 1 else 300_000, 2))  # 1.2 MB: several read blocks
    soundfile.write(tmp_path / "c.wav", audio, 48000, subtype="PCM_24")
    whole, _ = read_wav(tmp_path / "c.wav")
    with WavReader(tmp_path / "c.wav") as reader:
        assert (reader.sample_rate, reader.channels, reader.encoding) == (48000, 2, "pcm24")
        assert reader.n_frames == whole.size and reader.duration == whole.size / 48000
        parts = list(reader.chunks(frames))
        assert reader.position == whole.size
        assert reader.read(10).size == 0
    assert all(p.size == frames for p in parts[:-1]) and 0 < parts[-1].size <= frames
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    ref, _ = soundfile.read(tmp_path / "c.wav", dtype="float64")
    np.testing.assert_allclose(whole, ref.mean(axis=1), rtol=0, atol=1e-6)


def test_reader_read_sizes(tmp_path: Path) -> None:
    write_wav(tmp_path / "r.wav", np.linspace(-0.5, 0.5, 100), 16000)
    whole, _ = read_wav(tmp_path / "r.wav")
    with WavReader(tmp_path / "r.wav") as reader:
        first = reader.read(30)
        assert reader.read(0).size == 0
        rest = reader.read()
        with pytest.raises(VoicegenderError, match=r"r\.wav"):
            next(reader.chunks(0))
    np.testing.assert_array_equal(np.concatenate([first, rest]), whole)


# -- raw PCM ------------------------------------------------------------------------------------


def test_pcm16_to_float_scales_and_downmixes() -> None:
    raw = pcm16_bytes([-32768, 0, 16384, 32767])
    np.testing.assert_array_equal(pcm16_to_float(raw), [-1.0, 0.0, 0.5, 32767 / 32768])
    np.testing.assert_array_equal(pcm16_to_float(raw, channels=2), [-0.5, (16384 + 32767) / 65536])
    assert pcm16_to_float(b"").size == 0
    with pytest.raises(VoicegenderError, match="3 bytes"):
        pcm16_to_float(b"abc")
    with pytest.raises(VoicegenderError, match="whole number"):
        pcm16_to_float(pcm16_bytes([1, 2, 3]), channels=2)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("seed", range(5))
def test_pcm16_decoder_handles_any_byte_split(channels: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.integers(-32768, 32768, 2000 * channels).astype("<i2").tobytes()
    cuts = np.sort(rng.integers(0, len(raw), 40))
    decoder = Pcm16Decoder(channels)
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    out = [decoder.decode(bytearray(p) if i % 2 else p) for i, p in enumerate(pieces)]
    assert decoder.pending_bytes == 0
    np.testing.assert_array_equal(np.concatenate(out), pcm16_to_float(raw, channels))


def test_pcm16_decoder_holds_an_odd_byte() -> None:
    decoder = Pcm16Decoder()
    assert decoder.decode(b"\x00").size == 0
    assert decoder.pending_bytes == 1
    np.testing.assert_array_equal(decoder.decode(b"\x40\x00"), [0.5])
    assert decoder.pending_bytes == 1


# -- bad input ----------------------------------------------------------------------------------


def _nan_float() -> bytes:
    return riff(
        chunk(b"fmt ", fmt_body(FLOAT, bits=32)), chunk(b"data", np.array([0.1, np.nan], "<f4").tobytes())
    )


def _inf_float() -> bytes:
    return riff(
        chunk(b"fmt ", fmt_body(FLOAT, bits=64)), chunk(b"data", np.array([np.inf, 0.0], "<f8").tobytes())
    )


DATA = chunk(b"data", pcm16_bytes([1, 2, 3, 4]))
BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "empty"),
    "text": (b"hello world, this is not audio", "not a RIFF/WAVE"),
    "mp3": (b"ID3\x04\x00" + bytes(100), "not a RIFF/WAVE"),
    "tiny": (b"R", "truncated RIFF header"),
    "riff_only": (b"RIFF\x10\x00", "truncated RIFF header"),
    "rf64": (b"RF64" + bytes(40), "RF64"),
    "avi": (b"RIFF\x04\x00\x00\x00AVI ", "not WAVE"),
    "no_chunks": (riff(), "no fmt chunk"),
    "partial_chunk_header": (riff(b"fmt "), "truncated chunk header"),
    "no_data": (riff(chunk(b"fmt ", fmt_body())), "no data chunk"),
    "no_fmt": (riff(DATA), "no fmt chunk"),
    "fmt_truncated": (riff(chunk(b"fmt ", fmt_body()[:10], declared=16)), "truncated"),
    "fmt_too_short": (riff(chunk(b"fmt ", fmt_body()[:14]), DATA), "fmt chunk too short"),
    "list_truncated": (riff(chunk(b"fmt ", fmt_body()), chunk(b"LIST", b"INFO", declared=500)), "truncated"),
    "two_fmt": (riff(chunk(b"fmt ", fmt_body()), chunk(b"fmt ", fmt_body()), DATA), "more than one fmt"),
    "two_data": (riff(DATA, DATA, chunk(b"fmt ", fmt_body())), "more than one data"),
    "data_truncated": (
        riff(chunk(b"fmt ", fmt_body()), chunk(b"data", pcm16_bytes([1, 2]), declared=1000)),
        "truncated",
    ),
    "alaw": (riff(chunk(b"fmt ", fmt_body(6, bits=8)), DATA), "A-law (format tag 0x0006)"),
    "mulaw": (riff(chunk(b"fmt ", fmt_body(7, bits=8)), DATA), "mu-law (format tag 0x0007)"),
    "adpcm": (riff(chunk(b"fmt ", fmt_body(2, bits=4, block_align=256)), DATA), "ADPCM (format tag 0x0002)"),
    "mystery_tag": (riff(chunk(b"fmt ", fmt_body(0x1234)), DATA), "format tag 0x1234"),
    "ext_alaw": (riff(chunk(b"fmt ", fmt_body(EXTENSIBLE, bits=8, sub_tag=6)), DATA), "A-law"),
    "ext_short": (riff(chunk(b"fmt ", fmt_body(EXTENSIBLE)), DATA), "EXTENSIBLE fmt chunk too short"),
    "ext_guid": (
        riff(chunk(b"fmt ", fmt_body(EXTENSIBLE, sub_tag=PCM)[:-14] + bytes(14)), DATA),
        "sub-format",
    ),
    "zero_channels": (riff(chunk(b"fmt ", fmt_body(channels=0, block_align=2)), DATA), "zero channels"),
    "rate_zero": (riff(chunk(b"fmt ", fmt_body(rate=0)), DATA), "sample rate 0 Hz"),
    "rate_low": (riff(chunk(b"fmt ", fmt_body(rate=1000)), DATA), "sample rate 1000 Hz"),
    "rate_high": (riff(chunk(b"fmt ", fmt_body(rate=1_000_000)), DATA), "sample rate 1000000 Hz"),
    "block_align": (
        riff(chunk(b"fmt ", fmt_body(bits=16, block_align=3)), DATA),
        "inconsistent with block align 3",
    ),
    "pcm_40_bit": (riff(chunk(b"fmt ", fmt_body(bits=40)), DATA), "40 bits"),
    "pcm_4_bit": (riff(chunk(b"fmt ", fmt_body(bits=4, block_align=1)), DATA), "4 bits"),
    "float_16_bit": (riff(chunk(b"fmt ", fmt_body(FLOAT, bits=16)), DATA), "float sample size: 16 bits"),
    "float_nan": (_nan_float(), "NaN or infinite"),
    "float_inf": (_inf_float(), "NaN or infinite"),
    "no_samples": (riff(chunk(b"fmt ", fmt_body()), chunk(b"data", b"")), "contains no audio"),
    "less_than_a_frame": (
        riff(chunk(b"fmt ", fmt_body(channels=2)), chunk(b"data", b"\x01\x02")),
        "no audio",
    ),
}


def _assert_one_line_naming(err: VoicegenderError, path: Path, fragment: str) -> None:
    message = str(err)
    assert str(path) in message
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_raise_one_line_naming_the_file(tmp_path: Path, name: str) -> None:
    data, fragment = BAD_FILES[name]
    path = write(tmp_path / f"{name}.wav", data)
    with pytest.raises(WavError) as err:
        read_wav(path)
    _assert_one_line_naming(err.value, path, fragment)


@pytest.mark.parametrize("subtype", ["ALAW", "ULAW", "IMA_ADPCM", "MS_ADPCM", "GSM610"])
def test_compressed_wavs_written_by_libsndfile_are_refused_by_name(tmp_path: Path, subtype: str) -> None:
    path = tmp_path / f"{subtype}.wav"
    soundfile.write(path, np.zeros(1600), 8000, format="WAV", subtype=subtype)
    with pytest.raises(WavError) as err:
        read_wav(path)
    _assert_one_line_naming(err.value, path, "unsupported encoding")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(WavError) as err:
        read_wav(tmp_path / "nope.wav")
    _assert_one_line_naming(err.value, tmp_path / "nope.wav", "no such file")
    with pytest.raises(WavError) as err:
        read_wav(tmp_path)
    _assert_one_line_naming(err.value, tmp_path, "is a directory")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    write_wav(path, np.zeros(10), 16000)
    path.chmod(0)
    with pytest.raises(WavError) as err:
        read_wav(path)
    _assert_one_line_naming(err.value, path, "cannot open")


def test_file_shrinking_while_read_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "shrink.wav"
    write_wav(path, np.zeros(100_000), 16000)  # larger than the file object's read buffer
    with WavReader(path) as reader:
        os.truncate(path, 44 + 100)
        with pytest.raises(WavError, match="ended early"):
            reader.read()


def test_write_wav_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(VoicegenderError, match="NaN"):
        write_wav(tmp_path / "a.wav", np.array([0.0, np.nan]), 16000)
    with pytest.raises(VoicegenderError, match="sample rate"):
        write_wav(tmp_path / "a.wav", np.zeros(4), 100)
    with pytest.raises(VoicegenderError, match="shape"):
        write_wav(tmp_path / "a.wav", np.zeros((2, 2, 2)), 16000)
    with pytest.raises(VoicegenderError, match="cannot write"):
        write_wav(tmp_path / "missing" / "a.wav", np.zeros(4), 16000)


# -- fuzzing: anything either decodes to sane audio or raises VoicegenderError --------------------


def _check_read(path: Path) -> None:
    try:
        audio, rate = read_wav(path)
    except VoicegenderError as err:
        assert str(path) in str(err) and "\n" not in str(err)
        return
    assert audio.dtype == np.float32 and audio.ndim == 1 and audio.size > 0
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    assert isinstance(rate, int) and 4000 <= rate <= 384000


ENCODINGS = [(PCM, 8), (PCM, 16), (PCM, 24), (PCM, 32), (FLOAT, 32), (FLOAT, 64)]


@st.composite
def valid_wavs(draw: st.DrawFn) -> bytes:
    tag, bits = draw(st.sampled_from(ENCODINGS))
    channels = draw(st.integers(1, 3))
    frames = draw(st.integers(0, 40))
    extensible = draw(st.booleans())
    fmt = (
        fmt_body(EXTENSIBLE, channels, 16000, bits, sub_tag=tag)
        if extensible
        else fmt_body(tag, channels, 16000, bits)
    )
    payload = draw(st.binary(min_size=frames * channels * bits // 8, max_size=frames * channels * bits // 8))
    extra = [chunk(b"LIST", draw(st.binary(max_size=9)))] if draw(st.booleans()) else []
    return riff(chunk(b"fmt ", fmt), *extra, chunk(b"data", payload))


@st.composite
def mutated_wavs(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(valid_wavs()))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, min(len(data) - 1, 80)))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(data)))
        data[pos:pos] = draw(st.binary(min_size=1, max_size=12))
    return bytes(data)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_never_escape_as_another_exception(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz_random.wav"
    path.write_bytes(data)
    _check_read(path)


@FUZZ
@given(data=st.one_of(valid_wavs(), mutated_wavs()))
def test_mutated_wavs_never_escape_as_another_exception(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz_mutated.wav"
    path.write_bytes(data)
    _check_read(path)


@FUZZ
@given(data=st.binary(max_size=64), prefix=st.sampled_from([b"RIFF", b"RIFF\x00\x00\x00\x00WAVE", b""]))
def test_riff_prefixed_noise_never_escapes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, prefix: bytes
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz_prefixed.wav"
    path.write_bytes(prefix + data)
    _check_read(path)


def test_messages_name_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "bad.wav", b"not audio")
    with pytest.raises(WavError, match=r"^\./bad\.wav: not a RIFF/WAVE file"):
        read_wav("./bad.wav")

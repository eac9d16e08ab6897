"""Config loading: defaults, the shipped documented file, one-line errors naming file, section and key."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from voicegender import config as config_mod
from voicegender.config import SECTIONS, Config, field_docs, load_config, render_toml, with_overrides
from voicegender.errors import VoicegenderError

REPO = Path(__file__).resolve().parents[1]
FIRMWARE_CONFIG = REPO / "firmware_config" / "config.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(VoicegenderError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config {path}: ")
    return message[len(f"config {path}: ") :]


def test_missing_default_file_means_defaults(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(config_mod, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    assert load_config() == Config()


def test_missing_explicit_file_is_an_error(tmp_path) -> None:
    with pytest.raises(VoicegenderError, match=r"^config .*absent\.toml: file not found$"):
        load_config(tmp_path / "absent.toml")


def test_shipped_config_is_the_documented_defaults() -> None:
    """firmware_config/config.toml parses to the defaults, has every key, and matches the code's docs."""
    assert load_config(FIRMWARE_CONFIG) == Config()
    raw = tomllib.loads(FIRMWARE_CONFIG.read_text(encoding="utf-8"))
    assert list(raw) == list(SECTIONS)
    for name, cls in SECTIONS.items():
        assert list(raw[name]) == [f.name for f in dataclasses.fields(cls)], name
    # Generated from the dataclasses' field docstrings: regenerate with `voicegender config --defaults`.
    assert FIRMWARE_CONFIG.read_text(encoding="utf-8") == render_toml(Config())


def test_every_setting_is_documented() -> None:
    for name, cls in SECTIONS.items():
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            assert docs.get(f.name, "").strip(), f"[{name}] {f.name} has no docstring"
    lines = render_toml().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[i - 1].startswith("# ") and len(lines[i - 1]) > 10, line


def test_values_are_read(tmp_path) -> None:
    path = write(
        tmp_path,
        '[audio]\ninput = "-"\nsample_rate = 8000\nchunk_seconds = 0.05\n'
        "[vad]\nsnr_db = 8\n"  # an integer for a float is fine
        "[decision]\nfemale_above = 0.7\nprovisional = false\n"
        '[leds]\nmale_pin = 5\n[decision_log]\npath = "/tmp/x.jsonl"\n[logging]\nlevel = "debug"\n',
    )
    c = load_config(path)
    assert (c.audio.input, c.audio.sample_rate, c.audio.chunk_seconds) == ("-", 8000, 0.05)
    assert c.vad.snr_db == 8.0 and isinstance(c.vad.snr_db, float)
    assert c.decision.female_above == 0.7 and c.decision.provisional is False
    assert c.leds.male_pin == 5 and c.leds.female_pin == Config().leds.female_pin
    assert c.decision_log.path == "/tmp/x.jsonl"
    assert c.logging.level == "debug"
    assert c.model == Config().model


def test_unknown_key(tmp_path) -> None:
    message = error_of(tmp_path, "[leds]\npinn = 3\n")
    assert message.startswith("unknown key [leds] pinn (allowed: enabled, male_pin, female_pin, status_pin")


def test_unknown_section(tmp_path) -> None:
    assert error_of(tmp_path, "[microphone]\ndevice = 1\n") == (
        "unknown section [microphone] "
        "(allowed: model, audio, vad, decision, leds, decision_log, logging, api, mqtt)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[vad]\nsnr_db = "loud"\n', '[vad] snr_db: expected a number, got "loud"'),
        ("[leds]\nmale_pin = 1.5\n", "[leds] male_pin: expected an integer, got 1.5"),
        ("[leds]\nenabled = 1\n", "[leds] enabled: expected true or false, got 1"),
        ("[model]\nnum_threads = true\n", "[model] num_threads: expected an integer, got true"),
        ("[audio]\ndevice = 2\n", "[audio] device: expected a string, got 2"),
        ("[decision]\nhysteresis = [0.1]\n", "[decision] hysteresis: expected a number, got [0.1]"),
        ("vad = 3\n", "[vad] must be a table of keys, got 3"),
    ],
)
def test_bad_types(tmp_path, text: str, expected: str) -> None:
    assert error_of(tmp_path, text) == expected


@pytest.mark.parametrize(
    ("text", "section", "word"),
    [
        ("[vad]\nf0_min_hz = 700\n", "vad", "f0_min_hz"),
        ("[leds]\nmale_pin = 40\n", "leds", "male_pin"),
        ("[decision]\nmale_below = 0.9\nfemale_above = 0.5\n", "decision", "male_below"),
        ('[logging]\nlevel = "chatty"\n', "logging", "level"),
        ("[audio]\nsample_rate = 100\n", "audio", "sample_rate"),
        ("[decision_log]\nmax_bytes = 10\n", "decision_log", "max_bytes"),
        ("[model]\nnum_threads = 0\n", "model", "num_threads"),
    ],
)
def test_bad_values(tmp_path, text: str, section: str, word: str) -> None:
    message = error_of(tmp_path, text)
    assert message.startswith(f"[{section}]") and word in message


def test_invalid_toml(tmp_path) -> None:
    assert error_of(tmp_path, "[vad\nsnr_db = 3\n").startswith("not valid TOML (")


def test_unreadable_file(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xff\xfe[vad]")
    with pytest.raises(VoicegenderError, match=r"^config .*: unreadable \("):
        load_config(path)


def test_overrides_win_and_are_checked() -> None:
    base = Config()
    c = with_overrides(base, {"audio": {"input": "x.wav", "realtime": False}, "leds": {}})
    assert c.audio.input == "x.wav" and c.audio.realtime is False and c.leds == base.leds
    with pytest.raises(VoicegenderError, match=r"^command line: \[audio\] sample_rate must be"):
        with_overrides(base, {"audio": {"sample_rate": 5}})


def test_file_then_overrides(tmp_path) -> None:
    path = write(tmp_path, '[audio]\ninput = "a.wav"\ndevice = "USB"\n')
    c = with_overrides(load_config(path), {"audio": {"input": "b.wav"}})
    assert c.audio.input == "b.wav" and c.audio.device == "USB"


def test_device_spec() -> None:
    audio = Config().audio
    assert audio.device_spec is None
    assert dataclasses.replace(audio, device="2").device_spec == 2
    assert dataclasses.replace(audio, device="USB Audio").device_spec == "USB Audio"

"""Decision log: JSON lines of final decisions only, size rotation, clear errors for bad paths."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from datetime import datetime
from pathlib import Path

import pytest

from voicegender.decisionlog import DecisionLog, DecisionLogSettings, iso_utc, state_directory
from voicegender.errors import VoicegenderError
from voicegender.events import Decision, State


def decision(i: int, label: str = "female", final: bool = True) -> Decision:
    return Decision(label, 0.8, 1.25, float(i), i + 1.25, 5, final)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lines_are_json_with_decision_fields(tmp_path):
    path = tmp_path / "state" / "sub" / "decisions.jsonl"  # parent created
    log = DecisionLog(DecisionLogSettings(path=path), clock=lambda: 1738324800.1234)
    log.on_decision(decision(3, "male"))
    (record,) = lines(path)  # flushed without close
    log.close()
    assert record == {
        "time": "2025-01-31T12:00:00.123Z",
        "label": "male",
        "p_female": 0.8,
        "speech_seconds": 1.25,
        "start": 3.0,
        "end": 4.25,
        "windows": 5,
        "final": True,
    }
    assert datetime.fromisoformat(record["time"]).utcoffset().total_seconds() == 0


def test_only_final_decisions_are_written(tmp_path):
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(DecisionLogSettings(path=path))
    for state in State:
        log.on_state(state, "detail")
    log.on_decision(decision(0, final=False))
    log.on_decision(Decision("no_speech", math.nan, 0.0, 0.0, 0.0, 0))
    log.on_decision(decision(2, "uncertain"))
    log.close()
    records = lines(path)  # json.loads would accept NaN; the strict check is on the raw text
    assert [r["label"] for r in records] == ["no_speech", "uncertain"]
    assert records[0]["p_female"] is None and "NaN" not in path.read_text()


def test_appends_to_existing_file(tmp_path):
    path = tmp_path / "decisions.jsonl"
    for i in range(2):
        log = DecisionLog(DecisionLogSettings(path=path))
        log.on_decision(decision(i))
        log.close()
    assert [r["start"] for r in lines(path)] == [0.0, 1.0]


def test_rotation_boundary_and_backup_count(tmp_path):
    path = tmp_path / "decisions.jsonl"
    probe = DecisionLog(DecisionLogSettings(path=tmp_path / "probe.jsonl"), clock=lambda: 0.0)
    probe.on_decision(decision(10))
    probe.close()
    line_len = (tmp_path / "probe.jsonl").stat().st_size  # every line below has the same length
    settings = DecisionLogSettings(path=path, max_bytes=3 * line_len, backups=2)
    log = DecisionLog(settings, clock=lambda: 0.0)
    for i in range(10, 13):
        log.on_decision(decision(i))
    assert path.stat().st_size == 3 * line_len  # exactly full: not rotated yet
    assert not path.with_name("decisions.jsonl.1").exists()
    log.on_decision(decision(13))  # would pass max_bytes: rotate first
    assert [r["start"] for r in lines(path)] == [13.0]
    assert [r["start"] for r in lines(path.with_name("decisions.jsonl.1"))] == [10.0, 11.0, 12.0]
    for i in range(14, 22):
        log.on_decision(decision(i))
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("decisions"))
    assert names == ["decisions.jsonl", "decisions.jsonl.1", "decisions.jsonl.2"]
    assert [r["start"] for r in lines(path)] == [19.0, 20.0, 21.0]
    assert [r["start"] for r in lines(path.with_name("decisions.jsonl.1"))] == [16.0, 17.0, 18.0]
    assert [r["start"] for r in lines(path.with_name("decisions.jsonl.2"))] == [13.0, 14.0, 15.0]
    assert all(p.stat().st_size <= settings.max_bytes for p in tmp_path.glob("decisions*"))


def test_no_backups_keeps_one_file(tmp_path):
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(DecisionLogSettings(path=path, max_bytes=256, backups=0))
    for i in range(20):
        log.on_decision(decision(i))
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["decisions.jsonl"]
    assert path.stat().st_size <= 256
    assert lines(path)[-1]["start"] == 19.0


def test_disabled_writes_nothing(tmp_path):
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(DecisionLogSettings(path=path, enabled=False))
    log.on_decision(decision(0))
    log.close()
    assert not path.exists()


def test_parent_is_a_file_names_path_and_hint(tmp_path):
    (tmp_path / "blocker").write_text("")
    path = tmp_path / "blocker" / "decisions.jsonl"
    expected = rf"decision log {re.escape(str(path))}: cannot create directory .*--decision-log off"
    with pytest.raises(VoicegenderError, match=expected):
        DecisionLog(DecisionLogSettings(path=path))


def test_path_is_a_directory(tmp_path):
    expected = rf"decision log {re.escape(str(tmp_path))}: cannot open for appending"
    with pytest.raises(VoicegenderError, match=expected):
        DecisionLog(DecisionLogSettings(path=tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_directory(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(VoicegenderError, match="Permission denied"):
            DecisionLog(DecisionLogSettings(path=tmp_path / "decisions.jsonl"))
    finally:
        tmp_path.chmod(0o700)


def test_bad_settings_rejected():
    with pytest.raises(VoicegenderError, match="backups"):
        DecisionLogSettings(backups=-1)
    with pytest.raises(VoicegenderError, match="max_bytes"):
        DecisionLogSettings(max_bytes=10)


def test_iso_utc():
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000Z"


# -- where the log goes by default ---------------------------------------------------------------------


def test_default_is_in_the_users_state_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_STATE_HOME")
    (tmp_path / "home").mkdir()
    log = DecisionLog(DecisionLogSettings())
    log.on_decision(decision(1))
    log.close()
    expected = tmp_path / "home" / ".local" / "state" / "voicegender" / "decisions.jsonl"
    assert log.path == expected and [r["start"] for r in lines(expected)] == [1.0]
    for directory in (expected.parent, expected.parent.parent, expected.parent.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory  # created private


def test_xdg_state_home_and_systemd_state_directory(tmp_path, monkeypatch):
    env = {"HOME": "/home/someone", "XDG_STATE_HOME": str(tmp_path / "xdg")}
    assert state_directory(env) == tmp_path / "xdg" / "voicegender"
    # The XDG spec says a relative path is invalid and to be ignored.
    assert state_directory({**env, "XDG_STATE_HOME": "relative/state"}) == Path(
        "/home/someone/.local/state/voicegender"
    )
    # Under systemd, StateDirectory=voicegender sets $STATE_DIRECTORY (the first one if several).
    both = {**env, "STATE_DIRECTORY": "/var/lib/voicegender:/var/lib/other"}
    assert state_directory(both) == Path("/var/lib/voicegender")
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "unit-state"))
    (tmp_path / "unit-state").mkdir(mode=0o750)
    log = DecisionLog(DecisionLogSettings())
    log.close()
    assert log.path == tmp_path / "unit-state" / "decisions.jsonl" and log.path.exists()
    assert stat.S_IMODE((tmp_path / "unit-state").stat().st_mode) == 0o750  # systemd's, left alone


def test_explicit_path_wins_and_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert DecisionLogSettings(path="~/logs/d.jsonl").resolve() == tmp_path / "logs" / "d.jsonl"
    assert DecisionLogSettings(path=tmp_path / "x.jsonl").path == str(tmp_path / "x.jsonl")


def test_the_suite_keeps_default_logs_in_a_temp_dir(state_home, tmp_path_factory):
    """conftest points $XDG_STATE_HOME at a temp dir for every test (and the processes it starts)."""
    assert os.environ["XDG_STATE_HOME"] == str(state_home) and "STATE_DIRECTORY" not in os.environ
    assert state_home.is_relative_to(tmp_path_factory.getbasetemp())
    assert DecisionLogSettings().resolve() == state_home / "voicegender" / "decisions.jsonl"

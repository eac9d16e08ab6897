"""Journal output: structured fields under systemd, key=value lines on stderr otherwise."""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys
import types

import pytest

from voicegender.errors import VoicegenderError
from voicegender.events import Decision, State
from voicegender.journal import JournalOutput, logfmt, setup_logging

FEMALE = Decision(label="female", p_female=0.91234, speech_seconds=1.5, start=3.0, end=4.5, windows=5)


@pytest.fixture(autouse=True)
def restore_logger():
    """setup_logging changes the shared ``voicegender`` logger; put it back for other tests."""
    logger = logging.getLogger("voicegender")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
def fake_journal(monkeypatch):
    """A stand-in ``systemd.journal`` that records what would be sent."""
    sent: list[dict] = []
    journal = types.ModuleType("systemd.journal")
    journal.send = lambda MESSAGE, **fields: sent.append({"MESSAGE": MESSAGE, **fields})

    class JournalHandler(logging.Handler):
        def __init__(self, **fields):
            super().__init__()
            self.fields = fields

        def emit(self, record):
            sent.append({"MESSAGE": record.getMessage(), **self.fields})

    journal.JournalHandler = JournalHandler
    package = types.ModuleType("systemd")
    package.journal = journal
    monkeypatch.setitem(sys.modules, "systemd", package)
    monkeypatch.setitem(sys.modules, "systemd.journal", journal)
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    return sent


@pytest.fixture
def no_systemd(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)


def test_decision_fields_sent_to_journal(fake_journal):
    out = JournalOutput()
    assert out.to_journal
    out.on_decision(FEMALE)
    assert len(fake_journal) == 1
    entry = fake_journal[0]
    assert entry["PRIORITY"] == "6"
    assert entry["SYSLOG_IDENTIFIER"] == "voicegender"
    assert entry["VOICEGENDER_LABEL"] == "female"
    assert entry["VOICEGENDER_P_FEMALE"] == "0.9123"
    assert entry["VOICEGENDER_SPEECH_SECONDS"] == "1.500"
    assert entry["VOICEGENDER_START"] == "3.000"
    assert entry["VOICEGENDER_END"] == "4.500"
    assert entry["VOICEGENDER_WINDOWS"] == "5"
    assert entry["MESSAGE"].startswith("decision label=female p_female=0.9123")


def test_no_speech_leaves_p_female_out(fake_journal):
    JournalOutput().on_decision(Decision("no_speech", math.nan, 0.0, 0.0, 0.0, 0))
    assert fake_journal[0]["VOICEGENDER_LABEL"] == "no_speech"
    assert "VOICEGENDER_P_FEMALE" not in fake_journal[0]


def test_states_sent_once_and_errors_at_err_priority(fake_journal):
    out = JournalOutput()
    out.on_state(State.STARTING)
    out.on_state(State.LISTENING)
    out.on_state(State.SPEECH)  # toggles are DEBUG-only, skipped when not verbose
    out.on_state(State.LISTENING)
    out.on_state(State.ERROR, "microphone hw:1 gone")
    out.on_state(State.ERROR, "microphone hw:1 gone")  # retry: same error, not repeated
    out.on_state(State.LISTENING)  # recovered
    states = [(e["VOICEGENDER_STATE"], e["PRIORITY"]) for e in fake_journal]
    assert states == [("starting", "6"), ("listening", "6"), ("error", "3"), ("listening", "6")]
    assert fake_journal[2]["MESSAGE"] == 'state error detail="microphone hw:1 gone"'


def test_provisional_and_toggles_only_when_verbose(fake_journal):
    provisional = Decision("male", 0.2, 0.75, 0.0, 0.75, 2, final=False)
    JournalOutput().on_decision(provisional)
    assert fake_journal == []
    out = JournalOutput(verbose=True)
    out.on_decision(provisional)
    out.on_state(State.SPEECH)
    assert [e["PRIORITY"] for e in fake_journal] == ["7", "7"]
    assert fake_journal[0]["VOICEGENDER_FINAL"] == "0"


def test_setup_logging_uses_journal_handler_under_systemd(fake_journal):
    setup_logging("info")
    logging.getLogger("voicegender.pipeline").info("model loaded")
    assert fake_journal == [{"MESSAGE": "model loaded", "SYSLOG_IDENTIFIER": "voicegender"}]


def test_without_systemd_lines_go_to_stderr(no_systemd, capsys):
    setup_logging("info")
    out = JournalOutput()
    assert not out.to_journal
    out.on_state(State.STARTING)
    out.on_decision(FEMALE)
    logging.getLogger("voicegender.pipeline").debug("not shown at info")
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("voicegender.decisions: state starting")
    assert "INFO voicegender.decisions: decision label=female p_female=0.9123 speech_seconds=1.5" in lines[1]


def test_systemd_without_systemd_python_prefixes_priority(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "systemd", None)  # import fails
    monkeypatch.setenv("INVOCATION_ID", "0123")
    setup_logging("debug")
    out = JournalOutput()
    assert not out.to_journal
    out.on_state(State.ERROR, "no microphone")
    out.on_decision(FEMALE)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == '<3>voicegender.decisions: state error detail="no microphone"'
    assert lines[1].startswith("<6>voicegender.decisions: decision label=female")


def test_setup_logging_twice_replaces_handler(no_systemd, capsys):
    setup_logging("info")
    setup_logging("warning")
    logging.getLogger("voicegender.x").warning("once")
    logging.getLogger("voicegender.x").info("hidden")
    assert capsys.readouterr().err.count("once") == 1


def test_setup_logging_to_a_given_handler(no_systemd, capsys):
    """`listen` hands its terminal's handler in, so log lines never break into the meter line."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    given = Collect()
    assert setup_logging("warning", handler=given) is given
    logging.getLogger("voicegender.x").warning("shown")
    logging.getLogger("voicegender.x").info("below the level")
    assert seen == ["shown"] and capsys.readouterr().err == ""
    setup_logging("info")  # a later call replaces it, as for any handler set up here
    assert given not in logging.getLogger("voicegender").handlers


def test_bad_level_is_a_user_error():
    with pytest.raises(VoicegenderError, match="log level 'loud'"):
        setup_logging("loud")


def test_logfmt_quotes_what_needs_it():
    assert logfmt("x", {"a": 1, "b": True, "c": "two words", "d": ""}) == 'x a=1 b=true c="two words" d=""'


# Runs in a private mount namespace with a tmpfs on /run, where it plays journald: it binds the
# journal's socket and prints what systemd-python's real send() and JournalHandler deliver there.
_JOURNAL_CLIENT = """
import json, logging, os, socket, sys
os.makedirs("/run/systemd/journal")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/run/systemd/journal/socket")
sock.settimeout(10)
from voicegender.events import Decision
from voicegender.journal import JournalOutput, setup_logging
out = JournalOutput(use_journal=True)
assert out.to_journal
out.on_decision(Decision(label="female", p_female=0.91234, speech_seconds=1.5, start=3.0, end=4.5, windows=5))
setup_logging("info", use_journal=True)
logging.getLogger("voicegender.x").warning("two\\nlines")
print(json.dumps([sock.recv(1 << 16).decode("latin-1") for _ in range(2)]))
"""


def _journal_fields(datagram: bytes) -> dict[str, bytes]:
    """Fields of one native-protocol journal datagram: ``KEY=value\\n`` or ``KEY\\n<u64 length>value\\n``."""
    fields, i = {}, 0
    while i < len(datagram):
        end = datagram.index(b"\n", i)
        line = datagram[i:end]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            i = end + 1
        else:
            key, size = line, int.from_bytes(datagram[end + 1 : end + 9], "little")
            value = datagram[end + 9 : end + 9 + size]
            i = end + 9 + size + 1
        fields[key.decode()] = value
    return fields


def test_real_journal_receives_decision_fields_and_log_records():
    pytest.importorskip("systemd.journal")
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare not found (apt-get install util-linux)")
    namespace = [unshare, "--user", "--map-root-user", "--mount", "--propagation", "private"]
    probe = subprocess.run([*namespace, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace for a stand-in journald: {probe.stderr.strip()}")
    script = 'mount -t tmpfs tmpfs /run && exec "$0" -c "$1"'
    r = subprocess.run(
        [*namespace, "sh", "-c", script, sys.executable, _JOURNAL_CLIENT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    decision, record = (_journal_fields(d.encode("latin-1")) for d in json.loads(r.stdout))
    assert decision["MESSAGE"].startswith(b"decision label=female p_female=0.9123 ")
    expected = {
        "PRIORITY": b"6",
        "SYSLOG_IDENTIFIER": b"voicegender",
        "VOICEGENDER_LABEL": b"female",
        "VOICEGENDER_P_FEMALE": b"0.9123",
        "VOICEGENDER_SPEECH_SECONDS": b"1.500",
        "VOICEGENDER_WINDOWS": b"5",
        "VOICEGENDER_FINAL": b"1",
    }
    assert {k: decision.get(k) for k in expected} == expected
    assert record["MESSAGE"] == b"two\nlines" and record["PRIORITY"] == b"4"
    assert record["SYSLOG_IDENTIFIER"] == b"voicegender" and record["LOGGER"] == b"voicegender.x"


def test_import_does_not_import_systemd():
    code = "import sys, voicegender.journal; sys.exit('systemd' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

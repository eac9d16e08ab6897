"""systemd notify protocol against real AF_UNIX datagram sockets (path and abstract)."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from voicegender.events import Decision, State
from voicegender.notify import Notifier

PATHS = [False]
try:
    import systemd.daemon  # noqa: F401

    PATHS.append(True)
except ImportError:
    pass


@pytest.fixture(params=["path", "abstract"])
def listener(request, monkeypatch):
    """A bound datagram socket standing in for systemd; NOTIFY_SOCKET points at it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    if request.param == "path":
        folder = tempfile.mkdtemp(prefix="vgn")  # short: sun_path holds 108 bytes
        address = os.path.join(folder, "notify")
        sock.bind(address)
    else:
        folder = None
        name = f"voicegender-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        address = "@" + name
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()
    if folder:
        shutil.rmtree(folder)


def drain(sock: socket.socket) -> list[str]:
    sock.setblocking(False)
    out = []
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(1.0)


@pytest.mark.parametrize("use_systemd", PATHS)
def test_ready_status_stopping_arrive(listener, use_systemd):
    n = Notifier(use_systemd=use_systemd)
    assert n.enabled
    assert n.ready()
    assert listener.recv(4096) == b"READY=1"
    assert n.status("listening\nfor voices")
    assert listener.recv(4096) == b"STATUS=listening for voices"
    assert not n.status("listening for voices")  # unchanged: not re-sent
    assert n.stopping()
    assert listener.recv(4096) == b"STOPPING=1"
    assert n.reloading()
    message = listener.recv(4096).decode()
    assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", message)
    usec = int(message.rsplit("=", 1)[1])
    assert abs(usec / 1e6 - time.monotonic()) < 1.0
    n.close()


def test_both_code_paths_send_the_same_datagrams(listener):
    if len(PATHS) < 2:
        pytest.skip("systemd-python not installed")
    received = []
    for use_systemd in PATHS:
        n = Notifier(use_systemd=use_systemd)
        n.ready("up")
        n.status("error: mic gone")
        n.on_state(State.LISTENING)
        n.stopping()
        n.close()
        received.append(drain(listener))
    assert (
        received[0]
        == received[1]
        == ["READY=1\nSTATUS=up", "STATUS=error: mic gone", "STATUS=listening", "STOPPING=1"]
    )


@pytest.mark.parametrize("use_systemd", PATHS)
def test_watchdog_cadence(listener, monkeypatch, use_systemd):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    n = Notifier(use_systemd=use_systemd)
    assert n.watchdog_interval == pytest.approx(0.1)
    calls: list[tuple[float, bool]] = []
    t0 = time.monotonic()
    while (now := time.monotonic()) - t0 < 1.0:
        calls.append((now, n.watchdog(now)))
        time.sleep(0.0005)
    pings = drain(listener)
    sent_at = [t for t, sent in calls if sent]
    assert len(calls) > 200
    assert pings == ["WATCHDOG=1"] * len(sent_at)
    assert 8 <= len(pings) <= 11  # ~10; fewer only if this loop itself stalls on a busy machine
    assert sent_at[0] == calls[0][0]
    assert all(b - a >= 0.1 for a, b in itertools.pairwise(sent_at))
    # each ping goes out on the first call after it falls due, never later
    for t, sent in calls:
        previous = max(s for s in sent_at if s <= t)
        assert sent or t - previous < 0.1


def test_watchdog_due_uses_given_time(listener, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    n = Notifier(use_systemd=False)
    assert n.watchdog_due(100.0)
    assert n.watchdog(100.0)
    assert not n.watchdog_due(100.999) and not n.watchdog(100.999)
    assert n.watchdog(101.0)
    assert drain(listener) == ["WATCHDOG=1", "WATCHDOG=1"]
    clocked = Notifier(use_systemd=False)  # default clock: time.monotonic
    assert clocked.watchdog() and not clocked.watchdog()
    assert drain(listener) == ["WATCHDOG=1"]


def test_watchdog_for_another_pid_is_disabled(listener, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    n = Notifier(use_systemd=False)
    assert n.watchdog_interval is None
    assert not n.watchdog_due(0.0)
    assert not n.watchdog()
    assert drain(listener) == []


def test_status_follows_state_and_last_decision(listener):
    n = Notifier(use_systemd=False)
    n.on_state(State.STARTING)
    n.on_decision(Decision("male", 0.123, 1.0, 0.0, 1.0, 4, final=False))  # provisional: ignored
    n.on_state(State.LISTENING)
    n.on_decision(Decision("female", 0.9, 1.0, 0.0, 1.0, 4))
    n.on_state(State.ERROR, "microphone gone")
    got = drain(listener)
    assert got[:2] == ["STATUS=starting", "STATUS=listening"]
    assert re.fullmatch(r"STATUS=listening; last: female \(p_female 0\.90\) at \d\d:\d\d:\d\d", got[2])
    assert got[3:] == ["STATUS=error: microphone gone"]


@pytest.mark.parametrize("use_systemd", PATHS)
def test_outside_systemd_everything_is_a_noop(monkeypatch, use_systemd):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    n = Notifier(use_systemd=use_systemd)
    assert not n.enabled and n.watchdog_interval is None
    assert not any([n.ready(), n.status("x"), n.stopping(), n.reloading(), n.watchdog(), n.watchdog_due()])
    n.on_state(State.LISTENING)
    n.close()


def test_missing_socket_fails_quietly(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    n = Notifier(use_systemd=False)
    assert not n.ready()
    assert not n.status("x")
    assert len([r for r in caplog.records if "notify" in r.getMessage()]) == 1


def test_import_does_not_import_systemd():
    code = "import sys, voicegender.notify; sys.exit('systemd' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

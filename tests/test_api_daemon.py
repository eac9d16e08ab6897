"""The daemon with ``[api] enabled = true``: /state, /decisions and /events from the audio loop.

The daemon runs as a subprocess on stdin PCM with a real server on a free loopback port; the
hub's hand-over (bounded, never blocking the audio thread) is checked with an in-process server.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicegender.api.hub import PENDING_EVENTS, EventHub
from voicegender.api.server import ApiServer
from voicegender.api.settings import ApiSettings
from voicegender.config import Config
from voicegender.events import Decision, State
from voicegender.runner import open_model
from voicegender.wavio import read_wav


class SseReader:
    """Reads an SSE stream on a thread; ``events`` gets (event name, data dict) pairs, then None."""

    def __init__(self, base: str, path: str = "/api/v1/events") -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.conn.request("GET", path)
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("content-type").startswith("text/event-stream")
        self.events: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name, data = "message", ""
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data:
                    self.events.put((name, json.loads(data)))
                    name, data = "message", ""
        except (OSError, http.client.HTTPException):
            pass
        self.events.put(None)

    def until(self, done: Any, timeout: float = 60) -> list[tuple[str, dict[str, Any]]]:
        """Events up to and including the first for which ``done(name, data)``; fails on timeout."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            item = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if item is None:
                raise AssertionError(f"stream ended after {seen[-5:]}")
            seen.append(item)
            if done(*item):
                return seen


def get_json(url: str) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def same_records(got: list[dict[str, Any]], logged: list[dict[str, Any]]) -> None:
    """The log's records; each output stamps its own time, so those may differ by the call between."""
    from datetime import datetime

    assert [{k: v for k, v in d.items() if k != "time"} for d in got] == [
        {k: v for k, v in d.items() if k != "time"} for d in logged
    ]
    for g, w in zip(got, logged, strict=True):
        assert (
            abs(datetime.fromisoformat(g["time"]).timestamp() - datetime.fromisoformat(w["time"]).timestamp())
            < 1
        )


@pytest.fixture
def daemon(tmp_path, fixtures_dir) -> Iterator[dict[str, Any]]:
    """`voicegender run --input -` with the API on a free port and a decision log in tmp_path."""
    log = tmp_path / "decisions.jsonl"
    config = tmp_path / "config.toml"
    config.write_text(f'[api]\nenabled = true\nport = 0\n[decision_log]\npath = "{log}"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicegender.cli", "run", "--config", str(config), "--input", "-",
         "--input-rate", "16000", "--gpio", "mock", "--json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    stderr: list[str] = []
    found: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace")
            stderr.append(line)
            match = re.search(r"API and web page on (http://127\.0\.0\.1:\d+)", line)
            if match:
                found.put(match.group(1))

    threading.Thread(target=drain, daemon=True).start()
    try:
        base = found.get(timeout=60)
    except queue.Empty:
        proc.kill()
        pytest.fail("the daemon's API did not start: " + "".join(stderr))
    yield {"proc": proc, "base": base, "log": log, "stderr": stderr}
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_daemon_serves_state_decisions_and_events(daemon, fixtures_dir) -> None:
    base, proc = daemon["base"], daemon["proc"]
    status, state = get_json(base + "/api/v1/state")
    assert status == 200 and state["state"] in ("starting", "listening") and state["decision"] is None
    health = get_json(base + "/api/v1/health")[1]
    assert health["mode"] == "daemon" and health["microphone"]["state"] in ("opening", "open")
    sse = SseReader(base)
    assert sse.until(lambda name, data: name == "snapshot")
    audio, rate = read_wav(fixtures_dir / "demo_male_then_female.wav")
    assert rate == 16000
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2").tobytes()
    silence = bytes(2 * 16000 * 2)  # 2 s: the last utterance ends (and its continuation window passes)
    assert proc.stdin is not None
    proc.stdin.write(pcm + silence)
    proc.stdin.flush()
    events = sse.until(lambda name, data: name == "decision" and data["final"] and data["label"] == "female")
    names = [name for name, _ in events]
    assert {"state", "decision", "level"} <= set(names)
    states = [data["state"] for name, data in events if name == "state"]
    assert "speech" in states and "listening" in states
    finals = [data for name, data in events if name == "decision" and data["final"]]
    assert [d["label"] for d in finals] == ["male", "female"]
    assert all(d["type"] == "decision" for d in finals)

    # /decisions: the records the decision log wrote, from memory.
    status, body = get_json(base + "/api/v1/decisions?limit=10")
    assert status == 200
    logged = [json.loads(line) for line in daemon["log"].read_text().splitlines()]
    assert [d["label"] for d in logged] == ["male", "female"]
    same_records(body["decisions"], logged)
    same_records(get_json(base + "/api/v1/decisions?limit=1")[1]["decisions"], logged[-1:])
    for bad in ("0", "x", "100000000"):
        assert get_json(base + f"/api/v1/decisions?limit={bad}")[0] == 400
    status, state = get_json(base + "/api/v1/state")
    same_records([state["decision"]], logged[-1:])
    assert state["state"] in ("decided", "listening")

    proc.stdin.close()
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait(timeout=60)
    assert proc.returncode == 0, "".join(daemon["stderr"])
    printed = [json.loads(line) for line in out.decode().splitlines()]
    assert [{k: v for k, v in d.items() if k != "time"} for d in logged] == printed
    assert sse.until(lambda name, data: name == "state" and data["state"] == "stopped", timeout=30)
    assert not any("Traceback" in line for line in daemon["stderr"]), "".join(daemon["stderr"])


def test_reload_rebuilds_the_api(daemon, tmp_path) -> None:
    import signal

    base, proc = daemon["base"], daemon["proc"]
    config = tmp_path / "config.toml"
    assert get_json(base + "/api/v1/health")[0] == 200
    config.write_text(config.read_text().replace("[api]\n", '[api]\ncors_origins = "https://app.example"\n'))
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any("rebuilt api" in line for line in daemon["stderr"]):
        time.sleep(0.05)
    urls = [
        m.group(1) for line in daemon["stderr"] for m in [re.search(r"web page on (http://\S+)", line)] if m
    ]
    assert len(urls) == 2, "".join(daemon["stderr"])
    import urllib.request

    req = urllib.request.Request(urls[1] + "/api/v1/health", headers={"Origin": "https://app.example"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.headers["access-control-allow-origin"] == "https://app.example"
    if urls[0] != urls[1]:  # port 0: the old port is closed
        with pytest.raises(OSError):
            urllib.request.urlopen(urls[0] + "/api/v1/health", timeout=5)
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=60)
    assert proc.returncode == 0 and not any("Traceback" in line for line in daemon["stderr"])


def test_daemon_without_the_api_imports_none_of_it(fixtures_dir, tmp_path) -> None:
    script = f"""
import sys
from voicegender.cli import main
rc = main(["run", "--input", {str(fixtures_dir / "male_1320.wav")!r}, "--fast", "--gpio", "off",
           "--decision-log", "off", "--config", {str(tmp_path / "empty.toml")!r}])
api = ("voicegender.api", "uvicorn", "websockets", "asyncio")
loaded = sorted(m for m in sys.modules if m.startswith(api))
print(rc, loaded)
"""
    (tmp_path / "empty.toml").write_text("")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 ['voicegender.api', 'voicegender.api.settings']"


def test_api_that_cannot_start_stops_the_daemon_with_one_line(fixtures_dir, tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.toml"
        config.write_text(f"[api]\nenabled = true\nport = {port}\n")
        result = subprocess.run(
            [sys.executable, "-m", "voicegender.cli", "run", "--config", str(config), "--input",
             str(fixtures_dir / "male_1320.wav"), "--fast", "--gpio", "off", "--decision-log", "off"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"voicegender: error: [api] cannot listen on 127.0.0.1 port {port}: Address already in use; "
        "another program (or another voicegender) uses that port"
    )


# -- the hub ------------------------------------------------------------------------------------------


def decision(label: str = "male", p: float = 0.2, final: bool = True) -> Decision:
    return Decision(label, p, 1.5, 0.1, 1.6, 4, final=final)


def test_hub_keeps_bounded_state_and_never_waits() -> None:
    now = [1000.0]
    hub = EventHub(decisions_kept=3, hold_seconds=3.0, clock=lambda: now[0])
    calls = []
    hub.attach(lambda: calls.append(1))
    for i in range(PENDING_EVENTS + 50):  # nobody takes them: the oldest are dropped
        hub.on_decision(decision(p=i / 10000, final=i % 2 == 0))
    assert len(calls) == PENDING_EVENTS + 50
    taken = hub.take()
    assert len(taken) == PENDING_EVENTS and hub.dropped == 50
    assert taken[-1]["p_female"] == round((PENDING_EVENTS + 49) / 10000, 4)
    assert hub.take() == []
    assert len(hub.decisions(100)) == 3 and all(d["final"] for d in hub.decisions(100))
    assert "type" not in hub.decisions(1)[0]
    hub.on_state(State.LISTENING, "input x")
    hub.on_decision(decision("female", 0.9))
    assert hub.snapshot()["state"] == "decided"  # the LEDs still show it
    now[0] += 3.5
    assert hub.snapshot()["state"] == "listening"  # the hold time is over
    hub.on_state(State.SPEECH)
    assert hub.snapshot()["state"] == "speech"


class Chunk:
    """What the daemon's chunk hook passes: a processor with a level."""

    level_db = -23.04


def test_hub_level_events_are_rate_limited() -> None:
    now = [0.0]
    hub = EventHub(clock=lambda: now[0])
    for _ in range(50):  # 50 chunks of 0.125 s (exact in binary)
        hub.on_chunk(Chunk())
        now[0] += 0.125
    levels = [e for e in hub.take() if e["type"] == "level"]
    assert len(levels) == 25 and levels[0]["level_db"] == -23.0


def test_a_stuck_subscriber_is_dropped_and_the_daemon_never_waits(tmp_path) -> None:
    model = open_model(Config())
    hub = EventHub()
    config = dataclasses.replace(Config(), api=ApiSettings(port=0))
    srv = ApiServer(config, model, hub=hub)
    srv.start()
    try:
        host, port = srv.url.removeprefix("http://").split(":")
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect((host, int(port)))
        stuck.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # and never reads
        deadline = time.monotonic() + 10
        while not srv.app.subscribers and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(srv.app.subscribers) == 1
        detail = "x" * 20_000  # big events fill the socket buffers sooner
        published = 0
        while srv.app.subscribers and published < 10_000:
            for _ in range(100):  # as the audio thread does: these calls return at once
                hub.on_state(State.SPEECH, detail)
            published += 100
            time.sleep(0.01)
        assert not srv.app.subscribers, "the stuck subscriber was never dropped"
        assert published > 1000  # it was dropped for its full queue, not for anything else
        good = SseReader(srv.url)  # the server still serves the next subscriber
        good.until(lambda name, data: name == "snapshot")
        hub.on_decision(decision("female", 0.99))
        assert good.until(lambda name, data: name == "decision")[-1][1]["label"] == "female"
        stuck.close()
    finally:
        srv.stop()
    assert not srv.running


def test_page_is_served_with_its_assets(daemon) -> None:
    import urllib.request

    base = daemon["base"]
    with urllib.request.urlopen(base + "/", timeout=30) as resp:
        html = resp.read().decode()
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        with urllib.request.urlopen(base + asset, timeout=30) as resp:
            assert resp.status == 200 and resp.read()
    assert Path(__file__).name  # the daemon fixture ends with the test


def test_a_service_without_network_is_told_what_to_install(tmp_path) -> None:
    from voicegender.api.server import NO_NETWORK_HINT, only_loopback

    net = tmp_path / "net"
    (net / "lo").mkdir(parents=True)
    assert only_loopback(net)  # systemd's PrivateNetwork=yes: the API cannot be reached
    (net / "eth0").mkdir()
    assert not only_loopback(net)
    assert not only_loopback(tmp_path / "missing")
    assert "install.sh --api" in NO_NETWORK_HINT

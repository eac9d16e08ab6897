"""MQTT and Home Assistant discovery, against real mosquitto brokers (tests/mqtt_broker.py).

The daemon runs as `voicegender run` (the shipped model, mock GPIO) on a WAV file (--fast) or on
audio the test feeds through stdin; a recording subscriber sees what the broker got.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from mqtt_broker import Broker, Message, Recorder, kill_all, make_pki, need_mosquitto

from voicegender import homeassistant as ha
from voicegender.config import Config, with_overrides
from voicegender.doctor import check_mqtt
from voicegender.errors import VoicegenderError
from voicegender.events import Decision, State
from voicegender.mqtt import MqttOutput, MqttSettings
from voicegender.notify import Notifier
from voicegender.wavio import read_wav, write_wav

SR = 16000
BASE = "test/kitchen"

# Home Assistant's documented configuration keys for MQTT discovery, per platform
# (home-assistant.io: source/_integrations/sensor.mqtt.markdown, binary_sensor.mqtt.markdown).
COMMON_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic", "device",
    "device_class", "enabled_by_default", "encoding", "entity_category", "entity_picture",
    "expire_after", "force_update", "icon", "json_attributes_template", "json_attributes_topic",
    "name", "object_id", "payload_available", "payload_not_available", "platform", "qos",
    "state_topic", "unique_id", "value_template",
}  # fmt: skip
ALLOWED_KEYS = {
    "sensor": COMMON_KEYS | {"last_reset_value_template", "options", "suggested_display_precision",
                             "state_class", "unit_of_measurement"},
    "binary_sensor": COMMON_KEYS | {"off_delay", "payload_off", "payload_on"},
}  # fmt: skip
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id",
    "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
ID_CHARS = re.compile(r"[A-Za-z0-9_-]+")


@pytest.fixture(autouse=True)
def no_broker_outlives_its_test():
    yield
    kill_all()


@pytest.fixture(scope="module")
def clips(fixtures_dir) -> dict[str, np.ndarray]:
    return {
        "male": read_wav(fixtures_dir / "male_1320.wav")[0],
        "female": read_wav(fixtures_dir / "female_3575.wav")[0],
    }


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), dtype=np.float32)


def write_config(folder: Path, broker: Broker | None, **mqtt: object) -> Path:
    """A config with MQTT on for ``broker`` (values in ``mqtt`` override), the decisions log in ``folder``."""
    settings: dict[str, object] = {"enabled": True, "host": "127.0.0.1", "base_topic": BASE}
    if broker is not None:
        settings["port"] = broker.port
    settings.update(mqtt)
    lines = ["[decision]", "provisional = true", "[decision_log]", f'path = "{folder / "decisions.jsonl"}"',
             "[mqtt]", *(f"{k} = {json.dumps(v)}" for k, v in settings.items())]  # fmt: skip
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def logged(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "decisions.jsonl").read_text().splitlines()]


def env(**extra: str) -> dict[str, str]:
    e = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    if "NOTIFY_SOCKET" not in extra:
        e.pop("NOTIFY_SOCKET", None)
    return e


def run_cli(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "voicegender.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=timeout)


class StatusListener:
    """A datagram socket standing in for systemd's notify socket; keeps every STATUS= text."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="vgm")  # short: sun_path holds 108 bytes
        self.address = os.path.join(self.folder, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.address)
        self.sock.settimeout(0.2)
        self.statuses: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            self.statuses += [line[7:] for line in data.splitlines() if line.startswith("STATUS=")]

    def wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        deadline = threading.Event()
        for _ in range(int(timeout / 0.05)):
            hits = [s for s in self.statuses if re.search(pattern, s)]
            if hits:
                return hits[-1]
            deadline.wait(0.05)
        raise AssertionError(f"no STATUS= matching {pattern!r}; got {self.statuses[-10:]}")

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()
        os.unlink(self.address)
        os.rmdir(self.folder)


class Daemon:
    """`voicegender run --input - --gpio mock --json` with stdin fed by the test."""

    def __init__(self, config: Path, notify: StatusListener | None = None) -> None:
        extra = {"NOTIFY_SOCKET": notify.address} if notify else {}
        args = ["run", "--config", str(config), "--input", "-", "--gpio", "mock", "--json"]
        pipe = subprocess.PIPE
        self.p = subprocess.Popen([sys.executable, "-m", "voicegender.cli", *args],
                                  stdin=pipe, stdout=pipe, stderr=pipe, env=env(**extra))  # fmt: skip
        self.out: queue.Queue[dict] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._pump, args=(self.p.stdout, lambda s: self.out.put(json.loads(s))),
                         daemon=True).start()  # fmt: skip
        threading.Thread(target=self._pump, args=(self.p.stderr, self.err.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put) -> None:
        for line in iter(stream.readline, b""):
            put(line.decode())

    def feed(self, *parts: np.ndarray) -> None:
        audio = np.concatenate(parts)
        self.p.stdin.write((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
        self.p.stdin.flush()

    def decision(self, timeout: float = 30.0) -> dict:
        return self.out.get(timeout=timeout)

    def stop(self) -> int:
        self.p.send_signal(signal.SIGTERM)
        return self.p.wait(timeout=15)

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=10)

    def stderr(self) -> str:
        return "".join(self.err)


def payloads(messages: list[Message]) -> list[str]:
    return [m.payload for m in messages]


def live(messages: list[Message]) -> list[Message]:
    """Without the broker's replays of retained messages to a (re)subscribing recorder."""
    return [m for m in messages if not m.retain]


def same_record(mqtt: dict, log: dict) -> bool:
    """The MQTT message is the decisions-log record: every field equal, the time within 1 s (each
    output reads the clock itself, microseconds apart)."""
    t1, t2 = (datetime.fromisoformat(r["time"]) for r in (mqtt, log))
    rest = {k: v for k, v in mqtt.items() if k != "time"}
    return rest == {k: v for k, v in log.items() if k != "time"} and abs((t1 - t2).total_seconds()) < 1.0


def configs(messages: list[Message], prefix: str = "homeassistant") -> dict[str, dict]:
    return {m.topic: json.loads(m.payload) for m in messages if m.topic.startswith(f"{prefix}/")
            and m.topic.endswith("/config")}  # fmt: skip


def check_discovery(found: dict[str, dict], base: str) -> dict[str, dict]:
    """Home Assistant would accept these configs; returns them by entity name."""
    assert len(found) == 4, list(found)
    by_name = {}
    components = {}
    devices = []
    for topic, config in found.items():
        prefix, component, node, object_id, last = topic.split("/")
        assert prefix == "homeassistant" and last == "config"
        assert ID_CHARS.fullmatch(node) and ID_CHARS.fullmatch(object_id), topic
        assert component in ALLOWED_KEYS, topic
        assert set(config) <= ALLOWED_KEYS[component], set(config) - ALLOWED_KEYS[component]
        assert config["state_topic"].startswith(f"{base}/")
        assert config["availability_topic"] == f"{base}/availability"
        assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
        assert set(config["device"]) <= DEVICE_KEYS
        assert {"identifiers", "name", "model", "sw_version"} <= set(config["device"])
        devices.append(config["device"])
        by_name[config["name"]] = config
        components[config["name"]] = component
    assert all(d == devices[0] for d in devices)  # one device
    unique = [c["unique_id"] for c in by_name.values()]
    assert len(set(unique)) == 4 and all(ID_CHARS.fullmatch(u) for u in unique)
    machine_id = Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").exists() else ""
    if machine_id:
        assert machine_id not in json.dumps(found), "the raw machine id must not be published"

    gender = by_name["Voice gender"]
    assert gender["device_class"] == "enum" and sorted(gender["options"]) == sorted(ha.VOICE_LABELS)
    assert "state_class" not in gender and "unit_of_measurement" not in gender  # not allowed with options
    probability = by_name["Female probability"]
    assert probability["unit_of_measurement"] == "%" and probability["state_class"] == "measurement"
    assert by_name["Last decision"]["device_class"] == "timestamp"
    assert components == {"Voice gender": "sensor", "Female probability": "sensor", "Last decision": "sensor",
                          "Speech": "binary_sensor"}  # fmt: skip
    assert by_name["Speech"]["device_class"] == "sound"
    return by_name


# -- a WAV file through the daemon ----------------------------------------------------------------------


def test_wav_run_publishes_discovery_states_and_the_logged_decisions(tmp_path, clips) -> None:
    broker = Broker(tmp_path / "broker").start()
    recorder = Recorder(broker)
    try:
        wav = tmp_path / "script.wav"
        write_wav(
            wav, np.concatenate((silence(0.5), clips["male"], silence(1.5), clips["female"], silence(1))), SR
        )
        config = write_config(tmp_path, broker, hold_seconds=0)
        r = run_cli("run", "--config", config, "--input", wav, "--fast", "--gpio", "mock", "--json")
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        printed = [json.loads(line) for line in r.stdout.splitlines()]
        assert [d["label"] for d in printed] == ["male", "female"]
        availability = f"{BASE}/availability"
        recorder.wait_for(
            "offline at the end", lambda: payloads(recorder.on(availability))[-1:] == ["offline"]
        )
    finally:
        recorder.close()

    got = recorder.snapshot()
    by_name = check_discovery(configs(got), BASE)
    assert payloads(recorder.on(availability)) == ["online", "offline"]

    # Voice gender: none at the start, the male voice, ..., the female voice (provisional ones too).
    gender = payloads(recorder.on(by_name["Voice gender"]["state_topic"]))
    assert gender[0] == "none" and gender[-1] == "female", gender
    assert "male" in gender and gender.index("male") < len(gender) - 1 - gender[::-1].index("female")
    assert set(gender) <= set(by_name["Voice gender"]["options"])
    # Speech: off, then on and off for each stretch of speech (at least one per utterance).
    speech = by_name["Speech"]
    on_off = payloads(recorder.on(speech["state_topic"]))
    assert on_off[::2] == ["OFF"] * len(on_off[::2]) and on_off[1::2] == ["ON"] * len(on_off[1::2])
    assert on_off[-1] == "OFF" and on_off.count("ON") >= 2
    assert (speech["payload_on"], speech["payload_off"]) == ("ON", "OFF")

    # Each final decision once, QoS 1, equal to the decisions log; the states follow it.
    decisions = recorder.on(f"{BASE}/decision")
    log = logged(tmp_path)
    assert len(decisions) == len(log) == 2
    assert all(m.qos == 1 for m in decisions)
    assert all(same_record(json.loads(m.payload), rec) for m, rec in zip(decisions, log, strict=True))
    probability = [float(p) for p in payloads(recorder.on(by_name["Female probability"]["state_topic"]))]
    assert len(probability) == 2  # in %, one decimal; the log rounds p_female to 4 decimals
    assert all(abs(pct - 100 * rec["p_female"]) <= 0.051 for pct, rec in zip(probability, log, strict=True))
    last = payloads(recorder.on(by_name["Last decision"]["state_topic"]))
    assert last == [json.loads(m.payload)["time"] for m in decisions]
    assert datetime.fromisoformat(last[-1]).tzinfo is not None  # Home Assistant needs a time zone

    # What a newcomer (Home Assistant starting later) gets: retained configs and states, no decisions.
    later = Recorder(broker)
    try:
        later.wait_for("the retained messages", lambda: len(later.snapshot()) >= 4 + 5)
        retained = later.snapshot()
    finally:
        later.close()
        broker.kill()
    assert all(m.retain for m in retained)
    assert configs(retained) == configs(got)
    states = {m.topic: m.payload for m in retained}
    assert states[availability] == "offline" and states[by_name["Voice gender"]["state_topic"]] == "female"
    assert states[speech["state_topic"]] == "OFF" and f"{BASE}/decision" not in states


# -- availability, Home Assistant's return, the hold -----------------------------------------------------


def test_last_will_home_assistant_status_and_hold(tmp_path, clips) -> None:
    broker = Broker(tmp_path / "broker").start()
    recorder = Recorder(broker)
    config = write_config(tmp_path, broker, hold_seconds=0.5)
    availability = f"{BASE}/availability"
    daemon = Daemon(config)
    try:
        recorder.wait_for("online", lambda: payloads(recorder.on(availability)) == ["online"])
        first = configs(recorder.snapshot())
        check_discovery(first, BASE)

        # Home Assistant restarts: its birth message brings every config again.
        t = recorder.snapshot()[-1].at

        def since() -> dict[str, dict]:
            return configs([m for m in recorder.snapshot() if m.at > t])

        recorder.publish("homeassistant/status", "online")
        recorder.wait_for("the configs again", lambda: len(since()) == 4)
        assert since() == first

        # A final decision shows for hold_seconds, then "Voice gender" is none again.
        daemon.feed(silence(0.5), clips["male"], silence(1.5))
        assert daemon.decision()["label"] == "male"
        gender = f"{BASE}/voice_gender"
        recorder.wait_for(
            "none after the hold", lambda: payloads(recorder.on(gender))[-2:] == ["male", "none"]
        )

        # The daemon dies without a word: the broker publishes its last will.
        daemon.kill()
        recorder.wait_for(
            "offline (last will)", lambda: payloads(recorder.on(availability))[-1:] == ["offline"]
        )
        daemon = Daemon(config)
        recorder.wait_for(
            "online again", lambda: payloads(recorder.on(availability)) == ["online", "offline", "online"]
        )
        assert daemon.stop() == 0
        assert "Traceback" not in daemon.stderr()
    finally:
        daemon.kill()
        recorder.close()
        broker.kill()


# -- the broker goes away and comes back -----------------------------------------------------------------


def test_broker_killed_and_restarted_mid_run(tmp_path, clips) -> None:
    # Persistent broker and recorder: the recorder's subscription survives the crash, so decisions
    # the daemon sends right after it reconnects wait for the recorder whoever reconnects first.
    broker = Broker(tmp_path / "broker", persistent=True).start()
    recorder = Recorder(broker, persistent=True)
    notify = StatusListener()
    config = write_config(tmp_path, broker, queue_size=2, retry_max_seconds=1, hold_seconds=0)
    decision_topic = f"{BASE}/decision"
    daemon = Daemon(config, notify)
    utterance = {"male": (clips["male"], silence(1.5)), "female": (clips["female"], silence(1.5))}
    try:
        recorder.wait_for("online", lambda: payloads(recorder.on(f"{BASE}/availability")) == ["online"])
        notify.wait_for(r"mqtt connected")
        daemon.feed(silence(0.5), *utterance["male"])
        printed = [daemon.decision()]
        recorder.wait_for("the first decision", lambda: recorder.on(decision_topic))

        broker.kill()
        notify.wait_for(r"mqtt: (lost the connection|cannot reach)")
        # Four decisions while the broker is down; the queue holds two: the oldest two are dropped.
        for label in ("female", "male", "female", "male"):
            daemon.feed(*utterance[label])
            printed.append(daemon.decision())
        assert [d["label"] for d in printed] == ["male", "female", "male", "female", "male"]
        assert re.search(r"2 decisions dropped", notify.wait_for(r"decisions dropped"))

        killed_at = recorder.snapshot()[-1].at
        broker.start()
        recorder.wait_for("the queued decisions", lambda: len(recorder.on(decision_topic, killed_at)) >= 2)
        notify.wait_for(r"mqtt connected, 2 decisions dropped")
        daemon.feed(*utterance["female"])
        printed.append(daemon.decision())
        recorder.wait_for("the live decision", lambda: len(recorder.on(decision_topic, killed_at)) >= 3)
        # The restarted broker gets the discovery configs and availability again.
        after = [m for m in recorder.snapshot() if m.at > killed_at and not m.retain]
        assert len(configs(after)) == 4 and f"{BASE}/availability" in {m.topic for m in after}
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        notify.close()

    try:
        recorder.wait_for(
            "offline at the stop", lambda: payloads(recorder.on(f"{BASE}/availability"))[-1:] == ["offline"]
        )
    finally:
        recorder.close()
        broker.kill()
    # Nothing silently lost: every decision the daemon made was delivered or counted as dropped.
    delivered = {json.dumps(json.loads(m.payload), sort_keys=True) for m in recorder.on(decision_topic)}
    delivered_records = [json.loads(d) for d in delivered]
    log = logged(tmp_path)
    assert len(log) == len(printed) == 6
    arrived = [any(same_record(d, rec) for d in delivered_records) for rec in log]
    assert arrived == [True, False, False, True, True, True]  # the two oldest of the outage dropped
    err = daemon.stderr()
    assert err.count("dropping the oldest") == 1
    assert f"connected to 127.0.0.1:{broker.port} again; 2 decisions were dropped meanwhile" in err
    assert "Traceback" not in err


def test_broker_down_at_start_then_up_and_a_reload_moves_the_topics(tmp_path, clips) -> None:
    # The recorder's session is made first and kept by the broker (persistent), so it gets what
    # the daemon sends on connecting, whichever of the two reconnects first.
    broker = Broker(tmp_path / "broker", persistent=True).start()
    recorder = Recorder(broker, persistent=True)
    broker.kill()  # nothing listens on its port now
    notify = StatusListener()
    config = write_config(tmp_path, broker, retry_max_seconds=1)
    daemon = Daemon(config, notify)
    try:
        notify.wait_for(rf"mqtt: cannot reach the broker at 127.0.0.1:{broker.port} \(Connection refused\)")
        daemon.feed(silence(0.5), clips["female"], silence(1.5))
        assert daemon.decision()["label"] == "female"  # the daemon works without its broker

        broker.start()
        notify.wait_for(r"mqtt connected")
        decisions = recorder.wait_for("the decision made before", lambda: recorder.on(f"{BASE}/decision"))
        assert same_record(json.loads(decisions[0].payload), logged(tmp_path)[0])

        # SIGHUP with other [mqtt] settings: the output is rebuilt, the old topics say offline.
        write_config(tmp_path, broker, retry_max_seconds=1, base_topic="test/hall")
        daemon.p.send_signal(signal.SIGHUP)
        new, old = "test/hall/availability", f"{BASE}/availability"
        recorder.wait_for("the new base topic", lambda: payloads(live(recorder.on(new))) == ["online"])
        assert payloads(live(recorder.on(old))) == ["online", "offline"]
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        notify.close()
        recorder.close()
        broker.kill()
    err = daemon.stderr()
    assert err.count("cannot reach the broker") == 1  # logged once, however many attempts
    assert "configuration reloaded (rebuilt mqtt)" in err and "Traceback" not in err


# -- credentials and TLS ---------------------------------------------------------------------------------


def test_wrong_password_one_clear_line_slow_retries_no_crash(tmp_path, clips) -> None:
    broker = Broker(tmp_path / "broker", users={"alice": "right horse"}).start()
    (tmp_path / "password").write_text("wrong horse\n")
    config = write_config(tmp_path, broker, username="alice", password_file=str(tmp_path / "password"),
                          auth_retry_seconds=1)  # fmt: skip
    notify = StatusListener()
    daemon = Daemon(config, notify)
    try:
        status = notify.wait_for(r"mqtt: the broker")
        assert status.endswith(
            f"mqtt: the broker at 127.0.0.1:{broker.port} refused the login (Not authorized)"
        )
        daemon.feed(silence(0.5), clips["male"], silence(1.5))
        assert daemon.decision()["label"] == "male"  # the rest of the daemon carries on
        for _ in range(100):  # a few more attempts, one a second
            if broker.log().count("not authorised") >= 3:
                break
            threading.Event().wait(0.1)
        assert broker.log().count("not authorised") >= 3
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        notify.close()
        broker.kill()
    refusals = [line for line in daemon.err if "refused the login" in line]
    assert len(refusals) == 1, daemon.stderr()
    assert (
        refusals[0]
        .rstrip()
        .endswith(
            f"mqtt: the broker at 127.0.0.1:{broker.port} refused the login (Not authorized); "
            "check [mqtt] username and password_file; retrying every 1 s"
        )
    )
    assert "Traceback" not in daemon.stderr()


def test_doctor_reports_the_broker_login(tmp_path) -> None:
    broker = Broker(tmp_path / "broker", users={"alice": "right horse"}).start()
    try:
        password = tmp_path / "password"
        password.write_text("wrong horse\n")
        config = write_config(tmp_path, broker, username="alice", password_file=str(password))
        text = config.read_text().replace("[mqtt]", f'[audio]\ninput = "{tmp_path / "none.wav"}"\n[leds]\n'
                                          "enabled = false\n[mqtt]")  # fmt: skip
        config.write_text(text)
        r = run_cli("doctor", "--config", config)
        assert r.returncode == 1
        line = next(ln for ln in r.stdout.splitlines() if " mqtt: " in ln)
        assert line == (
            f"FAIL mqtt: the broker at 127.0.0.1:{broker.port} refused the login (Not authorized); "
            "check [mqtt] username and password_file"
        )
        password.write_text("right horse\n")
        config = with_overrides(
            Config(),
            {"mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "username": "alice",
                      "password_file": str(password), "base_topic": BASE}},
        )  # fmt: skip

        def service(**props: str):
            return lambda: {"LoadState": "loaded", **props}

        ok = check_mqtt(config, service=dict)
        assert ok.ok and ok.detail.startswith(f"connected to 127.0.0.1:{broker.port} as alice; topics under")
        # The installed service: without network it cannot work; its drops are shown.
        no_net = check_mqtt(config, service=service(PrivateNetwork="yes"))
        assert not no_net.ok and "install.sh --mqtt" in no_net.detail
        status = "listening; last: male (p_female 0.10) at 12:00:00; mqtt connected, 3 decisions dropped"
        drops = check_mqtt(config, service=service(PrivateNetwork="no", StatusText=status))
        assert drops.ok and drops.detail.endswith(
            "the running service reports 'mqtt connected, 3 decisions dropped'"
        )
        status = "listening; mqtt: cannot reach the broker at 127.0.0.1:1883 (Network is unreachable)"
        broken = check_mqtt(config, service=service(PrivateNetwork="no", StatusText=status))
        assert not broken.ok and "Network is unreachable" in broken.detail
    finally:
        broker.kill()


def test_tls_with_a_ca_made_here_and_a_client_certificate(tmp_path, clips) -> None:
    pki = make_pki(tmp_path / "pki")
    broker = Broker(tmp_path / "broker", pki=pki, client_certs=True).start()
    recorder = Recorder(broker)
    try:
        wav = tmp_path / "male.wav"
        write_wav(wav, np.concatenate((silence(0.5), clips["male"], silence(1.0))), SR)
        tls = {"tls": True, "tls_ca_file": str(pki.ca), "tls_certfile": str(pki.client_cert),
               "tls_keyfile": str(pki.client_key)}  # fmt: skip
        config = write_config(tmp_path, broker, **tls)
        r = run_cli("run", "--config", config, "--input", wav, "--fast", "--gpio", "mock", "--json")
        assert r.returncode == 0, r.stderr
        recorder.wait_for("the decision", lambda: recorder.on(f"{BASE}/decision"))
        assert same_record(json.loads(recorder.on(f"{BASE}/decision")[0].payload), logged(tmp_path)[0])
        assert "mqtt: connected to 127.0.0.1" in r.stderr

        # A certificate from a CA we do not trust: one clear error, the run itself goes on.
        config = write_config(tmp_path, broker, **{**tls, "tls_ca_file": str(pki.other_ca)})
        r = run_cli("run", "--config", config, "--input", wav, "--fast", "--gpio", "mock", "--json")
        assert r.returncode == 0, r.stderr
        assert [json.loads(line)["label"] for line in r.stdout.splitlines()] == ["male"]
        failures = [line for line in r.stderr.splitlines() if "TLS with" in line]
        assert len(failures) == 1 and "certificate verify failed" in failures[0], r.stderr
        assert "check [mqtt] tls_ca_file" in failures[0] and "Traceback" not in r.stderr
        mqtt = {
            **tls,
            "enabled": True,
            "host": "127.0.0.1",
            "port": broker.port,
            "tls_ca_file": str(pki.other_ca),
        }
        untrusted = with_overrides(Config(), {"mqtt": mqtt})
        verdict = check_mqtt(untrusted, service=dict)
        assert not verdict.ok and "certificate verify failed" in verdict.detail
        # Plain MQTT to the TLS port: said as such.
        plain = with_overrides(
            Config(), {"mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port}}
        )
        verdict = check_mqtt(plain, service=dict)
        assert (
            not verdict.ok
            and "closed the connection before accepting it; is it a TLS port?" in verdict.detail
        )
    finally:
        recorder.close()
        broker.kill()


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"username": "alice", "password_file": "absent"},
         "[mqtt] password_file {tmp}/absent: cannot read it (No such file or directory); the daemon's user"),
        ({"tls": True, "tls_ca_file": "absent.pem"},
         "[mqtt] tls_ca_file {tmp}/absent.pem: cannot read it (No such file or directory)"),
    ],
)  # fmt: skip
def test_unreadable_credentials_stop_the_start_with_one_clear_error(
    tmp_path, values: dict, error: str
) -> None:
    need_mosquitto()
    values = {k: str(tmp_path / v) if k.endswith("file") else v for k, v in values.items()}
    config = write_config(tmp_path, None, port=1883, **values)
    wav = tmp_path / "quiet.wav"
    write_wav(wav, silence(0.5), SR)
    r = run_cli("run", "--config", config, "--input", wav, "--fast", "--gpio", "mock")
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("voicegender: error:")]
    assert errors == [r.stderr.splitlines()[-1]] and "Traceback" not in r.stderr
    assert errors[0].startswith("voicegender: error: " + error.format(tmp=tmp_path)), errors


# -- the audio loop never waits for the network ----------------------------------------------------------


class StuckClient:
    """paho's client interface where connect() hangs, like a SYN sent into a black hole."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.connects = 0

    def connect(self, host: str, port: int, keepalive: int) -> None:
        self.connects += 1
        self.release.wait(60)
        raise OSError(113, "No route to host")

    def loop(self, timeout: float) -> int:
        raise AssertionError("never connected, so never looped")

    def publish(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("nothing can be published without a connection")

    def disconnect(self) -> None:
        pass


def test_outputs_never_wait_for_a_stuck_broker_and_count_what_they_drop() -> None:
    settings = MqttSettings(enabled=True, host="192.0.2.1", queue_size=10)
    notes: dict[str, str] = {}
    client = StuckClient()
    out = MqttOutput(settings, lambda key, text: notes.__setitem__(key, text), client=client, hostname="pi")

    def talk() -> None:
        for i in range(200):
            out.on_state(State.SPEECH)
            out.on_decision(Decision("male", 0.1, 2.0, float(i), i + 2.0, 5, final=False))
            out.on_decision(Decision("male", 0.1, 2.0, float(i), i + 2.0, 5))
            out.on_state(State.LISTENING)

    worker = threading.Thread(target=talk, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "an output call waited for the network"
    assert client.connects == 1 and not client.release.is_set()  # the connect is still hanging
    assert out.link is not None and out.link.dropped == 190
    assert notes["mqtt"] == "mqtt: connecting, 190 decisions dropped"
    client.release.set()
    notes_seen = threading.Event()
    for _ in range(100):
        if "cannot reach" in notes["mqtt"]:
            notes_seen.set()
            break
        threading.Event().wait(0.05)
    assert notes_seen.is_set(), notes
    assert (
        notes["mqtt"]
        == "mqtt: cannot reach the broker at 192.0.2.1:1883 (No route to host), 190 decisions dropped"
    )
    link = out.link
    out.close()
    assert link.dropped == 200  # the ten still queued at the stop count too
    assert notes["mqtt"] == ""  # the note is gone from STATUS=


def test_notifier_sends_notes_with_the_status(monkeypatch) -> None:
    listener = StatusListener()
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", listener.address)
        n = Notifier(use_systemd=False)
        n.on_state(State.LISTENING, "input mic")
        t = threading.Thread(target=n.set_note, args=("mqtt", "mqtt: connecting"))
        t.start()
        t.join()
        n.watchdog()
        n.set_note("mqtt", "")
        n.watchdog()
        listener.wait_for("^listening: input mic$")
        listener.wait_for("mqtt: connecting")
        for _ in range(40):
            if len(listener.statuses) >= 3:
                break
            threading.Event().wait(0.05)
    finally:
        listener.close()
    assert listener.statuses == [
        "listening: input mic",
        "listening: input mic; mqtt: connecting",
        "listening: input mic",
    ]


# -- settings, identity, imports -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"enabled": True}, "[mqtt] host must be set when enabled"),
        ({"qos": 3}, "[mqtt] qos must be 0, 1 or 2, got 3"),
        (
            {"base_topic": "home/#"},
            "[mqtt] base_topic 'home/#' must not contain + or # nor start or end with /",
        ),
        ({"password_file": "/etc/pw"}, "[mqtt] password_file needs a username"),
        ({"tls_ca_file": "/etc/ca.pem"}, "[mqtt] tls_ca_file, tls_certfile and tls_keyfile need tls = true"),
        ({"queue_size": 0}, "[mqtt] queue_size must be >= 1, got 0"),
        ({"port": 70000}, "[mqtt] port must be 0..65535, got 70000"),
    ],
)
def test_bad_settings_are_named(values: dict, message: str) -> None:
    with pytest.raises(VoicegenderError) as info:
        with_overrides(Config(), {"mqtt": values})
    assert str(info.value).startswith(f"command line: {message}")


def test_ports_topics_and_device_identity(tmp_path) -> None:
    assert MqttSettings().broker_port == 1883 and MqttSettings(tls=True).broker_port == 8883
    assert MqttSettings(port=1884, tls=True).broker_port == 1884
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef0123456789abcdef\n")
    dev = ha.device_id(machine_id, hostname="pi")
    assert re.fullmatch(r"[0-9a-f]{12}", dev) and dev not in "0123456789abcdef0123456789abcdef"
    assert ha.device_id(machine_id, hostname="other") == dev  # the machine id wins over the host name
    machine_id.write_text("fedcba9876543210fedcba9876543210\n")
    assert ha.device_id(machine_id, hostname="pi") != dev
    missing = tmp_path / "absent"
    assert ha.device_id(missing, "pi") == ha.device_id(missing, "pi") != ha.device_id(missing, "pi2")
    topics = ha.make_topics("", "homeassistant", hostname="pi-kitchen.local", dev_id=dev)
    assert (
        topics.base == "voicegender/pi-kitchen"
        and topics.availability == "voicegender/pi-kitchen/availability"
    )
    assert (
        topics.config("sensor", "voice_gender")
        == f"homeassistant/sensor/voicegender_{dev}/voice_gender/config"
    )
    assert ha.discovery_configs(ha.make_topics("x", "", dev_id=dev), qos=1) == []  # no prefix: no discovery


def test_nothing_is_imported_while_mqtt_is_off() -> None:
    code = (
        "import sys\n"
        "from voicegender.config import Config\n"
        "from voicegender.runner import output_slots\n"
        "from voicegender.mqtt import MqttOutput\n"
        "out = MqttOutput(Config().mqtt)\n"
        "out.on_state(__import__('voicegender.events').events.State.SPEECH)\n"
        "out.close()\n"
        "print('paho' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


# -- the Pi install --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_install_mqtt_adds_the_network_dropin_keeps_it_fresh_and_uninstall_removes_it(tmp_path) -> None:
    import platform

    from pi_helpers import FIRMWARE, SCRIPTS, bundle, need_root

    need_root()
    version = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    check = f"import sys; sys.exit('cp%d%d' % sys.version_info[:2] != '{version}')"
    if platform.machine() != "x86_64" or subprocess.run(["/usr/bin/python3", "-c", check]).returncode:
        pytest.skip(f"the --root install uses the bundle's x86_64-{version} wheels with /usr/bin/python3")
    b = bundle()

    def install(*args: str) -> None:
        r = subprocess.run(
            [str(b / "install.sh"), "--root", str(root), *args], capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr

    root = tmp_path / "root"
    dropin = root / "etc/systemd/system/voicegender.service.d/mqtt.conf"
    shipped = (FIRMWARE / "voicegender.service.d" / "mqtt.conf").read_text()
    install()
    assert not dropin.exists()  # no network unless asked for
    assert (root / "opt/voicegender/voicegender.service.d/mqtt.conf").read_text() == shipped  # for later
    # The bundle carries paho-mqtt: turning [mqtt] on needs no download.
    venv = root / "opt/voicegender/venv/bin/python"
    r = subprocess.run(
        [str(venv), "-c", "import paho.mqtt; print(paho.mqtt.__version__)"], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.startswith("2."), r.stderr
    install("--mqtt")
    assert dropin.read_text() == shipped
    dropin.write_text("# an older version\n")
    install()  # an upgrade without --mqtt refreshes it
    assert dropin.read_text() == shipped
    r = subprocess.run([str(SCRIPTS / "uninstall"), "--root", str(root)], capture_output=True, text=True)
    assert r.returncode == 0 and not dropin.exists(), r.stderr

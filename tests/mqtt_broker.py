"""Real MQTT brokers for the tests: Debian's mosquitto on a random loopback port (plain, with a
password file, or with TLS from a CA that openssl makes here), and a recording subscriber.

Without mosquitto the MQTT tests skip, except in CI (``CI=true``), where they fail: scripts/setup
installs it there.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing; in CI it must be there (scripts/setup all installs it)")
    pytest.skip(f"{what} is missing (scripts/setup all installs it)")


def need_mosquitto() -> str:
    """The mosquitto binary; skip (fail in CI) without it or without paho-mqtt."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None or shutil.which("mosquitto_passwd") is None:
        _missing("mosquitto (apt-get install mosquitto mosquitto-clients)")
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        _missing("paho-mqtt (pip install 'voicegender[mqtt]')")
    return str(found)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- TLS material -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A CA and what it signed, made by openssl for one test."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A second CA that signed nothing here: trusting it must fail the broker's certificate."""


def _openssl(*args: str | Path) -> None:
    r = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def make_pki(folder: Path) -> Pki:
    if shutil.which("openssl") is None:
        _missing("openssl")
    folder.mkdir(parents=True, exist_ok=True)
    days = "2"

    def ca(name: str) -> tuple[Path, Path]:
        key, cert = folder / f"{name}.key", folder / f"{name}.pem"
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                 "-days", days, "-subj", f"/CN=voicegender test {name}")  # fmt: skip
        return cert, key

    def signed(name: str, ca_cert: Path, ca_key: Path, extensions: str) -> tuple[Path, Path]:
        key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
        ext = folder / f"{name}.ext"
        ext.write_text(extensions + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        _openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
                 "-out", cert, "-days", days, "-extfile", ext)  # fmt: skip
        return cert, key

    ca_cert, ca_key = ca("ca")
    other_ca, _ = ca("other-ca")
    server_cert, server_key = signed(
        "localhost", ca_cert, ca_key, "subjectAltName=IP:127.0.0.1,DNS:localhost"
    )
    client_cert, client_key = signed("voicegender-client", ca_cert, ca_key, "extendedKeyUsage=clientAuth")
    return Pki(ca_cert, server_cert, server_key, client_cert, client_key, other_ca)


# -- the broker ---------------------------------------------------------------------------------------

RUNNING: set[Broker] = set()
"""Brokers started and not killed yet; ``kill_all()`` ends them (test_mqtt.py does after each test)."""


def kill_all() -> None:
    for broker in list(RUNNING):
        broker.kill()


class Broker:
    """One mosquitto process; ``start()`` again after ``kill()`` brings it back on the same port.

    ``persistent``: retained messages and subscriptions survive a kill (saved after every change),
    so a test subscriber's queued messages wait for it across a restart.
    """

    def __init__(
        self,
        folder: Path,
        *,
        users: dict[str, str] | None = None,
        pki: Pki | None = None,
        client_certs: bool = False,
        persistent: bool = False,
    ) -> None:
        self.binary = need_mosquitto()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.pki = pki
        self.log_path = folder / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", f"user {getpass.getuser()}", "log_type all"]
        if users:
            passwords = folder / "passwords"
            for i, (user, password) in enumerate(users.items()):
                create = ["-c"] if i == 0 else []
                r = subprocess.run(["mosquitto_passwd", "-b", *create, str(passwords), user, password],
                                   capture_output=True, text=True)  # fmt: skip
                assert r.returncode == 0, r.stderr
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if pki is not None:
            lines += [f"cafile {pki.ca}", f"certfile {pki.server_cert}", f"keyfile {pki.server_key}"]
            if client_certs:
                lines.append("require_certificate true")
        if persistent:
            store = folder / "store"
            store.mkdir(exist_ok=True)
            lines += ["persistence true", f"persistence_location {store}/", "autosave_interval 1",
                      "autosave_on_changes true"]  # fmt: skip
        else:
            lines.append("persistence false")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Broker:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log)
        log.close()
        RUNNING.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited ({self.proc.returncode}):\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not accept connections within {timeout} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: a crash, nothing said to the clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None
        RUNNING.discard(self)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# -- a subscriber that records everything ---------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    topic: str
    payload: str
    retain: bool
    qos: int
    at: float
    """time.monotonic() when it arrived."""


class Recorder:
    """Subscribes to everything (QoS 1) and keeps every message, in order; reconnects by itself.

    ``persistent``: a session the broker keeps (and queues for) while this client is away.
    """

    def __init__(
        self, broker: Broker, *, user: tuple[str, str] | None = None, persistent: bool = False
    ) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        name = f"recorder-{uuid.uuid4().hex[:8]}"
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=name, clean_session=not persistent
        )
        if user:
            self.client.username_pw_set(*user)
        if broker.pki is not None:
            self.client.tls_set(ca_certs=str(broker.pki.ca), certfile=str(broker.pki.client_cert),
                                keyfile=str(broker.pki.client_key))  # fmt: skip
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, reason, p: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the recorder could not subscribe"

    def _on_message(self, client: Any, userdata: Any, m: Any) -> None:
        with self._lock:
            self.messages.append(
                Message(m.topic, m.payload.decode(), bool(m.retain), m.qos, time.monotonic())
            )

    def snapshot(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def on(self, topic: str, since: float = 0.0) -> list[Message]:
        return [m for m in self.snapshot() if m.topic == topic and m.at >= since]

    def wait_for(self, what: str, condition: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            time.sleep(0.02)
        got = "\n".join(f"{m.topic} {m.payload[:80]} retain={m.retain}" for m in self.snapshot()[-40:])
        raise AssertionError(f"timed out waiting for {what}; last messages:\n{got}")

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

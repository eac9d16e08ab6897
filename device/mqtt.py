"""MQTT output: states and final decisions to a broker, with Home Assistant discovery.

What is published (topics in ``homeassistant.py``): the retained states ``<base>/voice_gender``,
``female_probability``, ``speech`` and ``last_decision``; each final decision as the decisions-log
record (JSON) on ``<base>/decision`` at QoS >= 1, not retained; ``<base>/availability`` = ``online``
(retained; the last will says ``offline``); the discovery configs, again whenever Home Assistant
announces ``online`` on ``<discovery_prefix>/status``.

The audio loop never waits for the network. ``on_state``/``on_decision`` only put messages into a
bounded queue under a lock; one worker thread owns the paho client: it connects (with backoff
1, 2, 4 ... ``retry_max_seconds``; ``auth_retry_seconds`` after a refused login or a failed TLS
check, each problem logged once), publishes, and answers Home Assistant. While the broker is away,
state changes only update the latest values (sent on reconnect) and decisions wait in the queue;
when it is full the oldest decision is dropped and counted. The count and the connection's health
go to ``STATUS=`` through ``note``. paho-mqtt is imported only when ``[mqtt] enabled``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Imported where used: ssl loads OpenSSL (~4 MB resident), and the config imports this module
    # for MqttSettings, so every daemon without MQTT would carry it.
    import ssl

from . import homeassistant as ha
from .decisionlog import decision_record
from .errors import VoicegenderError
from .events import Decision, State

log = logging.getLogger(__name__)

LOOP_SECONDS = 0.05
"""The worker's network poll: the longest a queued message waits before it is sent."""
FLUSH_SECONDS = 2.0
"""At stop, how long queued decisions may take to reach the broker before they count as dropped."""
NOTE_KEY = "mqtt"

Note = Callable[[str, str], None]
"""``note(key, text)``: show ``text`` in the service status (``Notifier.set_note``); "" removes it."""


@dataclass(frozen=True)
class MqttSettings:
    """MQTT broker and Home Assistant discovery ([mqtt] in the config)."""

    enabled: bool = False
    """True: publish states and decisions to an MQTT broker (needs paho-mqtt: the mqtt extra)."""
    host: str = ""
    """Broker host name or IP address, e.g. the Home Assistant machine."""
    port: int = 0
    """Broker port; 0 = 1883, or 8883 with tls."""
    username: str = ""
    """User name for the broker; empty = connect anonymously."""
    password_file: str = ""
    """File whose first line is the password (for the service: root:voicegender, mode 0640); empty = none."""
    tls: bool = False
    """Connect with TLS; the broker's certificate must be valid for host and signed by a trusted CA."""
    tls_ca_file: str = ""
    """CA certificate (PEM) that signed the broker's certificate; empty = the system's CAs."""
    tls_certfile: str = ""
    """Client certificate (PEM) for a broker that asks for one; empty = none."""
    tls_keyfile: str = ""
    """Private key (PEM, unencrypted) of tls_certfile; empty = the key is inside tls_certfile."""
    client_id: str = ""
    """MQTT client id; empty = voicegender-<device id> (a hash of /etc/machine-id)."""
    base_topic: str = ""
    """Prefix of the state, availability and decision topics; empty = voicegender/<hostname>."""
    discovery_prefix: str = "homeassistant"
    """Home Assistant's discovery prefix; empty = publish no discovery configs."""
    qos: int = 1
    """QoS (0, 1 or 2) of states, availability and discovery; decisions use at least 1."""
    hold_seconds: float = 5.0
    """How long "Voice gender" shows a final decision before it returns to none; 0 = until the next one."""
    queue_size: int = 100
    """Decisions kept while the broker is unreachable; past this the oldest are dropped (and counted)."""
    keepalive_seconds: int = 30
    """Ping interval; the broker marks this device offline 1.5 times this after it falls silent."""
    retry_max_seconds: float = 60.0
    """Longest wait between attempts to reach the broker (waits 1, 2, 4 ... s)."""
    auth_retry_seconds: float = 300.0
    """Wait between attempts after the broker refused the login or the TLS check failed."""

    def __post_init__(self) -> None:
        problems = []
        if self.enabled and not self.host.strip():
            problems.append("host must be set when enabled (the broker's host name or IP address)")
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be 0..65535, got {self.port}")
        if self.password_file and not self.username:
            problems.append("password_file needs a username")
        if (self.tls_ca_file or self.tls_certfile or self.tls_keyfile) and not self.tls:
            problems.append("tls_ca_file, tls_certfile and tls_keyfile need tls = true")
        if self.tls_keyfile and not self.tls_certfile:
            problems.append("tls_keyfile needs tls_certfile")
        for name in ("base_topic", "discovery_prefix"):
            value = getattr(self, name)
            if any(c in value for c in "+#\0") or value.startswith("/") or value.endswith("/"):
                problems.append(f"{name} {value!r} must not contain + or # nor start or end with /")
        if self.qos not in (0, 1, 2):
            problems.append(f"qos must be 0, 1 or 2, got {self.qos}")
        if self.hold_seconds < 0:
            problems.append(f"hold_seconds must be >= 0, got {self.hold_seconds}")
        if self.queue_size < 1:
            problems.append(f"queue_size must be >= 1, got {self.queue_size}")
        if not 5 <= self.keepalive_seconds <= 3600:
            problems.append(f"keepalive_seconds must be in 5..3600, got {self.keepalive_seconds}")
        if self.retry_max_seconds < 1 or self.auth_retry_seconds < 1:
            problems.append("retry_max_seconds and auth_retry_seconds must be >= 1")
        if problems:
            raise VoicegenderError(f"[mqtt] {'; '.join(problems)}")

    @property
    def broker_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.broker_port}"


# -- the paho client -----------------------------------------------------------------------------------


def _paho() -> Any:
    try:
        import paho.mqtt
        import paho.mqtt.client as mqtt
    except ImportError as exc:
        raise VoicegenderError(
            f"[mqtt] enabled = true needs paho-mqtt ({exc}); install it with "
            "pip install 'voicegender[mqtt]', or set [mqtt] enabled = false"
        ) from exc
    if int(paho.mqtt.__version__.split(".")[0]) < 2:
        raise VoicegenderError(
            f"[mqtt] needs paho-mqtt 2.x, found {paho.mqtt.__version__}; pip install 'voicegender[mqtt]'"
        )
    return mqtt


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def decisions(n: int) -> str:
    return f"{n} decision{'' if n == 1 else 's'}"


def read_password(settings: MqttSettings) -> str | None:
    """The first line of ``password_file`` (None without one)."""
    if not settings.password_file:
        return None
    path = Path(settings.password_file)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VoicegenderError(
            f"[mqtt] password_file {path}: cannot read it ({_reason(exc)}); the daemon's user must be "
            "able to read it (for the service: chgrp voicegender, chmod 0640)"
        ) from None
    if not lines or not lines[0]:
        raise VoicegenderError(f"[mqtt] password_file {path}: empty; put the password on its first line")
    return lines[0]


def make_client(settings: MqttSettings, client_id: str, will_topic: str | None) -> Any:
    """A configured paho client (not connected). Unreadable credentials or TLS files raise here."""
    mqtt = _paho()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=mqtt.MQTTv311,
        reconnect_on_failure=False,  # the worker reconnects itself, with its own backoff and messages
    )
    password = read_password(settings)
    if settings.username:
        client.username_pw_set(settings.username, password)
    if settings.tls:
        for key in ("tls_ca_file", "tls_certfile", "tls_keyfile"):
            name = getattr(settings, key)
            if name:
                try:
                    Path(name).open("rb").close()
                except OSError as exc:
                    raise VoicegenderError(f"[mqtt] {key} {name}: cannot read it ({_reason(exc)})") from None
        try:
            client.tls_set(
                ca_certs=settings.tls_ca_file or None,
                certfile=settings.tls_certfile or None,
                keyfile=settings.tls_keyfile or None,
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: not PEM, key does not match
            raise VoicegenderError(f"[mqtt] tls files: cannot load them ({_reason(exc)})") from None
    if will_topic:
        client.will_set(will_topic, ha.OFFLINE, qos=settings.qos, retain=True)
    return client


# What went wrong with a connection attempt: (short text for STATUS=, what to do about it).


def _tls_failed(settings: MqttSettings, exc: ssl.SSLError) -> tuple[str, str]:
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError):
        why = f"certificate verify failed: {exc.verify_message}"
    else:
        why = exc.reason or str(exc)
    return (
        f"TLS with {settings.where} failed ({why})",
        "check [mqtt] tls_ca_file and that host is a name or address in the broker's certificate",
    )


def _unreachable(settings: MqttSettings, exc: Exception) -> tuple[str, str]:
    return f"cannot reach the broker at {settings.where} ({_reason(exc)})", "is it running? check [mqtt] host"


def _refused(settings: MqttSettings, reason: object) -> tuple[str, str]:
    text = str(reason)
    credentials = "user" in text or "authori" in text
    return (
        f"the broker at {settings.where} refused the login ({text})",
        "check [mqtt] username and password_file" if credentials else "see the broker's log",
    )


def _closed_early(settings: MqttSettings) -> tuple[str, str]:
    return (
        f"{settings.where} closed the connection before accepting it",
        "is it the broker's TLS port?" if settings.tls else "is it a TLS port? then set [mqtt] tls = true",
    )


# -- the connection ------------------------------------------------------------------------------------


@dataclass
class _Message:
    topic: str
    payload: str
    qos: int
    retain: bool
    decision: bool


class MqttLink:
    """The broker connection, run by one worker thread that owns the paho client.

    ``set_state`` and ``send_decision`` are what the audio loop calls: a lock around a few dict and
    deque operations, nothing that touches the network.
    """

    def __init__(
        self,
        settings: MqttSettings,
        topics: ha.Topics,
        client_id: str,
        note: Note | None = None,
        client: Any = None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self._note = note
        self._client = client if client is not None else make_client(settings, client_id, topics.availability)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._lock = threading.Lock()
        self._queue: deque[_Message] = deque()
        self._states: dict[str, str] = {}  # the latest value of each state topic, sent on (re)connect
        self._online = False  # the broker accepted us and the connection stands
        self._resync = False  # just connected: send discovery, availability and every state
        self._rediscover = False  # Home Assistant came back: send discovery and every state again
        self._states_lost = False  # a state change fell out of the full queue: send every state again
        # (MQTTMessageInfo, is a decision) of queued messages handed to paho and not acknowledged yet;
        # at most queue_size, so a connection that died unnoticed cannot make paho hoard messages.
        self._unacked: list[tuple[Any, bool]] = []
        self.dropped = 0
        """Decisions dropped because the queue was full (or still undelivered at stop)."""
        self._outage_drops = 0
        self._problem = ""  # short text of what is wrong now; "" while connected
        self._logged = ""  # the last problem logged, so a retry loop logs it once
        self._accepted = False  # the current connection got a successful CONNACK
        self._refused_now = False
        self._backoff = 1.0
        self._stop = threading.Event()
        self._settled = threading.Event()  # the first connection attempt has an outcome
        self._thread = threading.Thread(target=self._run, name="voicegender-mqtt", daemon=True)

    # -- called from the audio loop (and the hold timer) ----------------------------------------------

    def set_state(self, key: str, value: str) -> None:
        """New value of a retained state topic; unchanged values are not sent again."""
        with self._lock:
            if self._states.get(key) == value:
                return
            self._states[key] = value
            if not self._online:
                return  # the reconnect sends the latest values, not a replay of old ones
            dropped = self._enqueue(_Message(self.topics.state(key), value, self.settings.qos, True, False))
        self._after_drop(dropped)

    def send_decision(self, payload: str) -> None:
        with self._lock:
            qos = max(1, self.settings.qos)
            dropped = self._enqueue(_Message(self.topics.decision, payload, qos, False, True))
        self._after_drop(dropped)

    def _enqueue(self, message: _Message) -> int:
        """Append; past ``queue_size`` drop the oldest. Returns how many decisions were dropped."""
        self._queue.append(message)
        dropped = 0
        while len(self._queue) > self.settings.queue_size:
            if self._queue.popleft().decision:
                dropped += 1
            else:
                self._states_lost = True  # not lost for good: the latest values go out again
        self.dropped += dropped
        self._outage_drops += dropped
        return dropped

    def _after_drop(self, dropped: int) -> None:
        if not dropped:
            return
        if self._outage_drops == dropped:  # the first of this outage
            log.warning(
                "mqtt: queue full (queue_size = %d) while %s is away; dropping the oldest decisions",
                self.settings.queue_size,
                self.settings.where,
            )
        self._update_note()

    # -- status ---------------------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self._online

    def status(self) -> str:
        """One line for STATUS=: connected or what is wrong, and the drops so far."""
        with self._lock:
            text = "mqtt connected" if self._online else f"mqtt: {self._problem or 'connecting'}"
            if self.dropped:
                text += f", {decisions(self.dropped)} dropped"
        return text

    def _update_note(self) -> None:
        if self._note is not None:
            self._note(NOTE_KEY, self.status())

    def _set_problem(self, problem: tuple[str, str] | None, retry: str = "", error: bool = False) -> None:
        """Record what is wrong (None: nothing); a problem is logged once, not at every retry."""
        short = problem[0] if problem else ""
        with self._lock:
            self._problem = short
        if problem and short != self._logged:
            what = "; ".join(filter(None, (problem[1], retry)))
            (log.error if error else log.warning)("mqtt: %s; %s", short, what)
        self._logged = short
        self._update_note()

    # -- the worker thread ----------------------------------------------------------------------------

    def start(self) -> None:
        self._update_note()
        self._thread.start()

    def wait_settled(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until the first attempt connected, and sent its configs, or failed."""
        return self._settled.wait(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self._session()
            except Exception:  # a bug here must not silently end MQTT for the daemon's lifetime
                log.exception("mqtt: unexpected error; reconnecting")
                with self._lock:
                    self._online = False
                wait = self._next_backoff()
            self._stop.wait(wait)

    def _next_backoff(self) -> float:
        wait = self._backoff
        self._backoff = min(self._backoff * 2, self.settings.retry_max_seconds)
        return wait

    def _session(self) -> float:
        """One connection, from connect to its end; returns how long to wait before the next."""
        import ssl  # loaded already: paho imports it

        s = self.settings
        self._accepted = self._refused_now = False
        try:
            self._client.connect(s.host, s.broker_port, s.keepalive_seconds)
        except ssl.SSLError as exc:
            self._set_problem(_tls_failed(s, exc), self._slow_retry, error=True)
            self._settled.set()
            return s.auth_retry_seconds
        except (OSError, ValueError) as exc:  # ValueError: a host name IDNA cannot encode
            self._set_problem(_unreachable(s, exc), self._backoff_retry)
            self._settled.set()
            return self._next_backoff()
        while not self._stop.is_set():
            if self._client.loop(LOOP_SECONDS) != 0:
                break
            if self._online:
                self._drain()
                self._settled.set()
        self._settled.set()
        if self._stop.is_set():
            self._finish()
            return 0.0
        with self._lock:
            self._online = False
        if self._refused_now:
            return s.auth_retry_seconds
        if self._accepted:
            self._backoff = 1.0
            self._set_problem((f"lost the connection to {s.where}", ""), self._backoff_retry)
        else:
            self._set_problem(_closed_early(s), self._backoff_retry)
        return self._next_backoff()

    @property
    def _slow_retry(self) -> str:
        return f"retrying every {self.settings.auth_retry_seconds:g} s"

    @property
    def _backoff_retry(self) -> str:
        return f"retrying with backoff up to {self.settings.retry_max_seconds:g} s"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refused_now = True
            self._set_problem(_refused(self.settings, reason), self._slow_retry, error=True)
            return
        self._accepted = True
        self._backoff = 1.0
        if self.topics.discovery_prefix:
            client.subscribe(self.topics.ha_status, qos=1)
        with self._lock:
            self._online = True
            self._resync = True
            drops, self._outage_drops = self._outage_drops, 0
        was = self._logged
        self._set_problem(None)
        if was or drops:
            verb = "was" if drops == 1 else "were"
            extra = f"; {decisions(drops)} {verb} dropped meanwhile" if drops else ""
            log.warning("mqtt: connected to %s again%s", self.settings.where, extra)
        else:
            log.info("mqtt: connected to %s; topics under %s/", self.settings.where, self.topics.base)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._lock:
            self._online = False
        self._update_note()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.topic == self.topics.ha_status and message.payload.strip().lower() == b"online":
            with self._lock:
                self._rediscover = True

    def _drain(self) -> None:
        """Send what is due: after a (re)connect or Home Assistant's return everything, then the queue."""
        qos = self.settings.qos
        with self._lock:
            resync, rediscover = self._resync, self._rediscover
            snapshot = dict(self._states) if resync or rediscover or self._states_lost else None
            self._resync = self._rediscover = self._states_lost = False
            if snapshot is not None:  # the latest values supersede queued state changes
                self._queue = deque(m for m in self._queue if m.decision)
        if snapshot is not None:
            if resync or rediscover:
                for topic, config in ha.discovery_configs(self.topics, qos):
                    self._client.publish(topic, json.dumps(config), qos, retain=True)
            if resync:
                self._client.publish(self.topics.availability, ha.ONLINE, qos, retain=True)
            for key, value in snapshot.items():
                self._client.publish(self.topics.state(key), value, qos, retain=True)
        self._unacked = [(info, d) for info, d in self._unacked if not info.is_published()]
        while len(self._unacked) < self.settings.queue_size:
            with self._lock:
                if not self._queue or not self._online:
                    break
                message = self._queue.popleft()
            info = self._client.publish(message.topic, message.payload, message.qos, message.retain)
            if message.qos > 0:
                self._unacked.append((info, message.decision))

    def _finish(self) -> None:
        """At stop: deliver what is queued (up to FLUSH_SECONDS), say offline, disconnect."""
        deadline = time.monotonic() + FLUSH_SECONDS
        while self._online and time.monotonic() < deadline:
            self._drain()
            with self._lock:
                pending = bool(self._queue)
            if not pending and not self._unacked:
                break
            if self._client.loop(LOOP_SECONDS) != 0:
                break
        if self._online:
            self._client.publish(self.topics.availability, ha.OFFLINE, self.settings.qos, retain=True)
            self._client.disconnect()
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and self._client.loop(LOOP_SECONDS) == 0:
                pass
        else:
            self._client.disconnect()  # a connection still being set up

    def close(self) -> None:
        """Flush (bounded), publish offline, disconnect; what could not be delivered counts as dropped."""
        self._stop.set()
        # Connected: give the flush its time. Not: the worker may sit in a connect() (up to paho's
        # 5 s timeout) that nothing here needs; it is a daemon thread and dies with the process.
        self._thread.join(FLUSH_SECONDS + 2.0 if self._online else 0.5)
        with self._lock:
            lost = sum(m.decision for m in self._queue)
            lost += sum(d and not info.is_published() for info, d in self._unacked)
            self._queue.clear()
            self.dropped += lost
        if lost:
            log.warning("mqtt: %s not delivered to %s before the stop", decisions(lost), self.settings.where)
        if self._note is not None:
            self._note(NOTE_KEY, "")


# -- the output ----------------------------------------------------------------------------------------


class MqttOutput:
    """States and final decisions to MQTT with Home Assistant discovery (implements ``events.Output``).

    "Voice gender" follows the decisions (provisional ones too) and returns to none
    ``hold_seconds`` after a final one, or on an error; "Speech" is ON in the speech state;
    "Female probability" and "Last decision" change with each final decision, which is also sent
    as its decisions-log record. Does nothing, and imports nothing, when ``enabled`` is False.
    ``settle_seconds`` > 0: wait that long at most for the first connection attempt's outcome.
    """

    def __init__(
        self,
        settings: MqttSettings,
        note: Note | None = None,
        *,
        settle_seconds: float = 0.0,
        clock: Callable[[], float] = time.time,
        client: Any = None,
        hostname: str | None = None,
        machine_id_file: Path = ha.MACHINE_ID,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._generation = 0
        self.link: MqttLink | None = None
        if not settings.enabled:
            return
        dev = ha.device_id(machine_id_file, hostname)
        self.topics = ha.make_topics(settings.base_topic, settings.discovery_prefix, hostname, dev)
        client_id = settings.client_id or f"voicegender-{dev}"
        self.link = MqttLink(settings, self.topics, client_id, note=note, client=client)
        self.link.set_state(ha.VOICE_GENDER, "none")
        self.link.set_state(ha.SPEECH, ha.SPEECH_OFF)
        self.link.start()
        if settle_seconds > 0:
            self.link.wait_settled(settle_seconds)

    def on_state(self, state: State, detail: str = "") -> None:
        if self.link is None:
            return
        self.link.set_state(ha.SPEECH, ha.SPEECH_ON if state is State.SPEECH else ha.SPEECH_OFF)
        if state is State.ERROR:
            self._show("none")

    def on_decision(self, decision: Decision) -> None:
        if self.link is None:
            return
        self._show(decision.label if decision.label in ha.VOICE_LABELS else "none", hold=decision.final)
        if not decision.final:
            return
        record = decision_record(decision, self._clock())
        if math.isfinite(decision.p_female):
            self.link.set_state(ha.FEMALE_PROBABILITY, f"{100 * decision.p_female:.1f}")
        self.link.set_state(ha.LAST_DECISION, record["time"])
        self.link.send_decision(json.dumps(record, separators=(",", ":"), allow_nan=False))

    def _show(self, label: str, hold: bool = False) -> None:
        assert self.link is not None
        with self._lock:
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.link.set_state(ha.VOICE_GENDER, label)
            if hold and label != "none" and self.settings.hold_seconds > 0:
                self._timer = threading.Timer(self.settings.hold_seconds, self._expire, (self._generation,))
                self._timer.daemon = True
                self._timer.start()

    def _expire(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation and self.link is not None:
                self.link.set_state(ha.VOICE_GENDER, "none")
                self._timer = None

    def close(self) -> None:
        with self._lock:
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if self.link is not None:
            self.link.close()
            self.link = None


# -- doctor --------------------------------------------------------------------------------------------


def probe(settings: MqttSettings, timeout: float = 5.0) -> str:
    """Connect once as the daemon would (another client id, no last will); what happened, in words.

    Raises ``VoicegenderError`` with the reason when it cannot connect or log in.
    """
    import ssl  # loaded already: paho imports it

    dev = ha.device_id()
    # Not the daemon's own client id: the broker would disconnect the daemon for it.
    client_id = f"{settings.client_id or f'voicegender-{dev}'}-doctor"
    client = make_client(settings, client_id, will_topic=None)
    answer: list[Any] = []
    client.on_connect = lambda c, userdata, flags, reason, props: answer.append(reason)
    problem: tuple[str, str] | None = None
    try:
        client.connect(settings.host, settings.broker_port, settings.keepalive_seconds)
    except ssl.SSLError as exc:
        problem = _tls_failed(settings, exc)
    except (OSError, ValueError) as exc:
        problem = _unreachable(settings, exc)
    else:
        deadline = time.monotonic() + timeout
        try:
            while not answer and time.monotonic() < deadline:
                if client.loop(0.1) != 0:
                    break
        finally:
            client.disconnect()
        if not answer:
            problem = _closed_early(settings)
        elif answer[0].is_failure:
            problem = _refused(settings, answer[0])
    if problem is not None:
        raise VoicegenderError(f"{problem[0]}; {problem[1]}")
    topics = ha.make_topics(settings.base_topic, settings.discovery_prefix, dev_id=dev)
    how = (" with TLS" if settings.tls else "") + (f" as {settings.username}" if settings.username else "")
    discovery = f", discovery under {topics.discovery_prefix}/" if topics.discovery_prefix else ""
    return f"connected to {settings.where}{how}; topics under {topics.base}/{discovery}"

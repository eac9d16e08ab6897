"""Home Assistant MQTT discovery: the topics voicegender publishes and the configs that describe them.

One device (identified by a hash of /etc/machine-id, never the id itself) with four entities:

- sensor "Voice gender" (``device_class: enum``): male, female, uncertain or none;
- sensor "Female probability" in % (``state_class: measurement``), set by each final decision;
- binary_sensor "Speech" (``device_class: sound``): ON while an utterance is in progress;
- sensor "Last decision" (``device_class: timestamp``): when the last final decision was made.

All four are unavailable while ``<base>/availability`` says ``offline`` (the client's last will).
Each config goes to ``<discovery_prefix>/<component>/<node>/<entity>/config``, retained.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__

MACHINE_ID = Path("/etc/machine-id")
VOICE_LABELS = ("male", "female", "uncertain", "none")
"""The states of the "Voice gender" sensor; ``none`` = no decision shown."""
ONLINE, OFFLINE = "online", "offline"
SPEECH_ON, SPEECH_OFF = "ON", "OFF"

# State topics under the base topic (all retained) and the decision stream (not retained).
VOICE_GENDER = "voice_gender"
FEMALE_PROBABILITY = "female_probability"
SPEECH = "speech"
LAST_DECISION = "last_decision"
AVAILABILITY = "availability"
DECISION = "decision"
STATE_KEYS = (VOICE_GENDER, FEMALE_PROBABILITY, SPEECH, LAST_DECISION)


def device_id(machine_id_file: Path = MACHINE_ID, hostname: str | None = None) -> str:
    """12 hex digits that identify this machine: a keyed hash of /etc/machine-id (or the host name).

    The machine id is a secret-ish system identifier (systemd asks applications to publish only
    application-specific hashes of it); a hash keyed with the application name cannot be turned back.
    """
    try:
        raw = machine_id_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        raw = ""
    source = raw or (hostname if hostname is not None else socket.gethostname())
    import hashlib  # here, not at the top: it loads OpenSSL (~3.5 MB resident), which only MQTT needs
    import hmac

    return hmac.new(b"voicegender", source.encode(), hashlib.sha256).hexdigest()[:12]


def topic_safe(text: str) -> str:
    """``text`` usable as one MQTT topic level / discovery id: [A-Za-z0-9_-] only."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text) or "unknown"


@dataclass(frozen=True)
class Topics:
    """Where everything goes, derived from ``[mqtt]`` and this machine."""

    base: str
    """Prefix of the state, availability and decision topics."""
    discovery_prefix: str
    """Home Assistant's discovery prefix; empty = no discovery."""
    node: str
    """This device's id in discovery topics and unique ids: voicegender_<device id>."""
    hostname: str
    """Shown in the device name."""

    def state(self, key: str) -> str:
        return f"{self.base}/{key}"

    @property
    def availability(self) -> str:
        return f"{self.base}/{AVAILABILITY}"

    @property
    def decision(self) -> str:
        return f"{self.base}/{DECISION}"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth/last-will topic: ``online`` there means "send discovery again"."""
        return f"{self.discovery_prefix}/status"

    def config(self, component: str, key: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node}/{key}/config"


def make_topics(
    base_topic: str, discovery_prefix: str, hostname: str | None = None, dev_id: str | None = None
) -> Topics:
    host = hostname if hostname is not None else socket.gethostname()
    base = base_topic or f"voicegender/{topic_safe(host.split('.')[0])}"
    node = f"voicegender_{dev_id or device_id(hostname=host)}"
    return Topics(base=base, discovery_prefix=discovery_prefix, node=node, hostname=host)


def discovery_configs(topics: Topics, qos: int) -> list[tuple[str, dict[str, Any]]]:
    """(topic, payload) of each entity's discovery config; empty without a discovery prefix."""
    if not topics.discovery_prefix:
        return []
    device = {
        "identifiers": [topics.node],
        "name": f"voicegender {topics.hostname}",
        "model": "voicegender voice gender classifier",
        "sw_version": __version__,
    }

    def entity(key: str, name: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"{topics.node}_{key}",
            "state_topic": topics.state(key),
            "availability_topic": topics.availability,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "qos": qos,
            "device": device,
            **extra,
        }

    return [
        (
            topics.config("sensor", VOICE_GENDER),
            entity(
                VOICE_GENDER,
                "Voice gender",
                device_class="enum",
                options=list(VOICE_LABELS),
                icon="mdi:account-voice",
            ),
        ),
        (
            topics.config("sensor", FEMALE_PROBABILITY),
            entity(
                FEMALE_PROBABILITY,
                "Female probability",
                unit_of_measurement="%",
                state_class="measurement",
                suggested_display_precision=0,
                icon="mdi:percent",
            ),
        ),
        (
            topics.config("binary_sensor", SPEECH),
            entity(SPEECH, "Speech", device_class="sound", payload_on=SPEECH_ON, payload_off=SPEECH_OFF),
        ),
        (
            topics.config("sensor", LAST_DECISION),
            entity(LAST_DECISION, "Last decision", device_class="timestamp", icon="mdi:clock-outline"),
        ),
    ]

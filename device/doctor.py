"""``voicegender doctor``: one line per check of what the daemon needs, each OK or FAIL with a hint."""

from __future__ import annotations

import dataclasses
import glob
import grp
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Config, load_config
from .errors import VoicegenderError


@dataclass(frozen=True)
class Verdict:
    """The result of one check."""

    name: str
    """What was checked (config, model, microphone, gpio, permissions, mqtt)."""
    ok: bool
    """True when the check passed."""
    detail: str
    """What was found, or what is wrong and how to fix it."""

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def check_config(path: Path | None) -> tuple[Verdict, Config | None]:
    from .config import DEFAULT_CONFIG_PATH

    shown = path or DEFAULT_CONFIG_PATH
    try:
        config = load_config(path)
    except VoicegenderError as exc:
        return Verdict("config", False, f"{exc}; fix the file (see firmware_config/config.toml)"), None
    if path is None and not shown.exists():
        return Verdict("config", True, f"{shown} absent: using the defaults"), config
    return Verdict("config", True, f"{shown} parses"), config


def check_model(config: Config) -> Verdict:
    from .runner import model_path, open_model

    try:
        model = open_model(config)
        meta = model.metadata
        probe = np.zeros((1, meta.window_frames, meta.frontend.n_mfcc), dtype=np.float32)
        value = float(model.logits(probe)[0])
    except VoicegenderError as exc:
        return Verdict("model", False, f"{exc}; reinstall the package or set [model] path")
    if not np.isfinite(value):
        return Verdict(
            "model", False, f"{model_path(config)}: inference gives {value}; the model file is broken"
        )
    unverified = getattr(model, "unverified", None)  # None: a stand-in model without a file
    integrity = ""
    if unverified:
        missing = "/".join(unverified)
        integrity = f"; unverified: its metadata has no {missing} (re-export the model to add them)"
    elif unverified is not None:
        integrity = "; size and sha256 match its metadata"
    return Verdict(
        "model",
        True,
        f"{model.path} loads ({model.runtime}), metadata matches the front end "
        f"({meta.window_frames} frames x {meta.frontend.n_mfcc} MFCCs){integrity}",
    )


def check_microphone(config: Config, seconds: float = 2.0) -> Verdict:
    audio = config.audio
    if not audio.is_microphone:
        if audio.input == "-":
            return Verdict("microphone", True, "input is stdin (raw s16le), no microphone needed")
        from .audiofile import AudioFile

        try:
            with AudioFile(audio.input) as f:
                what = f"{f.format}, {f.sample_rate} Hz, {f.channels} channel(s)"
        except VoicegenderError as exc:
            return Verdict("microphone", False, f"input is a file that cannot be read: {exc}")
        return Verdict("microphone", True, f"input is the file {audio.input} ({what})")
    from .runner import make_source

    source = make_source(audio)
    try:
        source.open()
        deadline = time.monotonic() + seconds
        got = None
        while got is None and time.monotonic() < deadline:
            got = source.read(0.2)
    except VoicegenderError as exc:
        text = str(exc).removeprefix("microphone: ")
        return Verdict("microphone", False, f"{text}; see `voicegender devices` and set [audio] device")
    finally:
        source.close()
    if got is None:
        return Verdict("microphone", False, f"{source.name}: opened but gave no audio within {seconds:g} s")
    return Verdict("microphone", True, f"{source.name} records at {source.sample_rate} Hz")


def check_gpio(config: Config, chips: Callable[[], list[str]] | None = None) -> Verdict:
    if not config.leds.enabled:
        return Verdict("gpio", True, "LEDs disabled ([leds] enabled = false)")
    if config.leds.pin_factory == "mock" or os.environ.get("GPIOZERO_PIN_FACTORY") == "mock":
        return Verdict("gpio", True, "mock pin factory (no hardware used)")
    found = sorted(chips() if chips else glob.glob("/dev/gpiochip*"))
    if not found:
        return Verdict(
            "gpio",
            False,
            "no /dev/gpiochip*: not a Raspberry Pi? use --gpio mock (simulated LEDs) or --gpio off "
            "with run/listen, or set [leds] enabled = false",
        )
    usable = [c for c in found if os.access(c, os.R_OK | os.W_OK)]
    if not usable:
        group = _group_of(found[0])
        return Verdict(
            "gpio",
            False,
            f"{', '.join(found)} not writable by this user; add it to the {group} group "
            f"(sudo usermod -aG {group} $USER, then log in again)",
        )
    return Verdict("gpio", True, f"{', '.join(usable)} accessible")


def _group_of(path: str) -> str:
    try:
        return grp.getgrgid(os.stat(path).st_gid).gr_name
    except (KeyError, OSError):
        return "gpio"


def check_permissions(config: Config) -> Verdict:
    from .decisionlog import HINT

    settings = config.decision_log
    if not settings.enabled:
        return Verdict("permissions", True, "decision log disabled")
    try:
        path = settings.resolve()
    except VoicegenderError as exc:
        return Verdict("permissions", False, str(exc))
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # the directory is created on start if its parent allows
    target = path if path.exists() else existing
    if target == existing and not existing.is_dir():
        return Verdict("permissions", False, f"decision log {path}: {existing} is not a directory; {HINT}")
    if os.access(target, os.W_OK):
        return Verdict("permissions", True, f"decision log {path} writable")
    return Verdict("permissions", False, f"decision log {path}: {target} not writable; {HINT}")


SERVICE = "voicegender.service"


SERVICE_PROPERTIES = ("LoadState", "PrivateNetwork", "StatusText")


def service_properties(names: tuple[str, ...] = SERVICE_PROPERTIES) -> dict[str, str]:
    """Properties of the installed service (``systemctl show``); empty where there is no systemd."""
    if shutil.which("systemctl") is None:
        return {}
    try:
        r = subprocess.run(
            ["systemctl", "show", SERVICE, *(f"--property={n}" for n in names)],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if r.returncode != 0:
        return {}
    return dict(line.partition("=")[::2] for line in r.stdout.splitlines() if "=" in line)


def check_mqtt(config: Config, service: Callable[[], dict[str, str]] = service_properties) -> Verdict:
    """Connect to the broker as the daemon would; also what the running service reports about MQTT."""
    settings = config.mqtt
    if not settings.enabled:
        return Verdict("mqtt", True, "disabled ([mqtt] enabled = false)")
    from .mqtt import probe

    try:
        detail = probe(settings)
    except VoicegenderError as exc:
        return Verdict("mqtt", False, str(exc))
    props = service()
    if props.get("LoadState") != "loaded":
        return Verdict("mqtt", True, detail)
    if props.get("PrivateNetwork") == "yes":
        return Verdict(
            "mqtt",
            False,
            f"{detail}, but {SERVICE} has no network (PrivateNetwork=yes); run the bundle's "
            "install.sh --mqtt, or copy /opt/voicegender/voicegender.service.d/mqtt.conf to "
            "/etc/systemd/system/voicegender.service.d/, then sudo systemctl daemon-reload and "
            "sudo systemctl restart voicegender",
        )
    # The service's STATUS= ends with its MQTT note: "mqtt connected[, N decisions dropped]" or
    # "mqtt: <what is wrong>[, ...]".
    running = [p.strip() for p in props.get("StatusText", "").split(";") if p.strip().startswith("mqtt")]
    if running and not running[0].startswith("mqtt connected"):
        return Verdict("mqtt", False, f"{detail}, but the running service reports {running[0]!r}")
    if running:
        detail += f"; the running service reports {running[0]!r}"
    return Verdict("mqtt", True, detail)


def run_checks(config_path: Path | None, model: str | None = None) -> list[Verdict]:
    verdict, config = check_config(config_path)
    verdicts = [verdict]
    config = config or Config()
    if model:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, path=model))
    verdicts += [check_model(config), check_microphone(config), check_gpio(config), check_permissions(config)]
    verdicts.append(check_mqtt(config))
    return verdicts

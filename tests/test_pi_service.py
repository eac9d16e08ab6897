"""The systemd unit and the sysusers file: systemd accepts them, they are locked down, and the daemon's
inference still works under the memory protections the unit turns on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pi_helpers import FIRMWARE, REPO, need_root, need_tools

UNIT = FIRMWARE / "voicegender.service"
MAX_EXPOSURE = 2.5


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Key -> values (in order) of a unit file, ignoring sections and comments."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def unit_copy(tmp_path: Path, exec_start: str = "/bin/true") -> Path:
    """The unit with ExecStart's binary swapped for one that exists here (verify checks it exists)."""
    text = UNIT.read_text()
    assert "ExecStart=/opt/voicegender/venv/bin/voicegender run" in text
    copy = tmp_path / "voicegender.service"
    binary = "ExecStart=/opt/voicegender/venv/bin/voicegender"
    copy.write_text(text.replace(binary, f"ExecStart={exec_start}"))
    return copy


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    need_tools("systemd-analyze")
    copy = unit_copy(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Unknown key" not in r.stderr and "Unknown lvalue" not in r.stderr, r.stderr


def test_systemd_analyze_verify_catches_a_missing_binary(tmp_path: Path) -> None:
    # The check above means something: verify does fail when ExecStart points nowhere.
    need_tools("systemd-analyze")
    copy = unit_copy(tmp_path, exec_start="/nonexistent/voicegender")
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "/nonexistent/voicegender" in r.stderr


def exposure(tmp_path: Path) -> float:
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit_copy(tmp_path))],
        capture_output=True,
        text=True,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    return float(m[1])


def test_security_exposure_is_low(tmp_path: Path) -> None:
    need_tools("systemd-analyze")
    score = exposure(tmp_path)
    print(f"systemd-analyze security exposure: {score}")
    assert score <= MAX_EXPOSURE


def test_unit_runs_the_daemon_as_a_notify_service_with_watchdog_and_bounded_restarts() -> None:
    s = unit_settings(UNIT)
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    daemon = "/opt/voicegender/venv/bin/voicegender"
    assert s["ExecStart"] == [f"{daemon} run --config /etc/voicegender/config.toml"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Restart"] == ["on-failure"]
    watchdog = int(s["WatchdogSec"][0].removesuffix("s"))
    restart_sec = int(s["RestartSec"][0].removesuffix("s"))
    burst, interval = int(s["StartLimitBurst"][0]), int(s["StartLimitIntervalSec"][0])
    assert 2 <= watchdog <= 60
    # A crash loop gives up: the burst fits inside the interval instead of restarting forever.
    assert restart_sec >= 1 and burst * restart_sec < interval
    assert s["User"] == ["voicegender"]
    assert s["StateDirectory"] == ["voicegender"] and s["ConfigurationDirectory"] == ["voicegender"]
    # lgpio writes its notification FIFO into the working directory: it must be writable.
    assert s["WorkingDirectory"] == ["/var/lib/voicegender"]
    assert "LG_WD=/var/lib/voicegender" in s["Environment"]


def test_sysusers_creates_an_unprivileged_user_in_audio_and_gpio(tmp_path: Path) -> None:
    need_tools("systemd-sysusers")
    need_root()
    (tmp_path / "etc").mkdir()
    r = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(FIRMWARE / "sysusers.d" / "voicegender.conf")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    passwd = {ln.split(":")[0]: ln.split(":") for ln in (tmp_path / "etc/passwd").read_text().splitlines()}
    group = {ln.split(":")[0]: ln.split(":") for ln in (tmp_path / "etc/group").read_text().splitlines()}
    user = passwd["voicegender"]
    assert 0 < int(user[2]) < 1000  # a system user
    assert user[5] == "/var/lib/voicegender" and user[6] == "/usr/sbin/nologin"
    for g in ("audio", "gpio"):
        assert "voicegender" in group[g][3].split(",")


# --- MemoryDenyWriteExecute= -----------------------------------------------------------------------

# Runs a snippet with the kernel's PR_SET_MDWE (what systemd >= 253 uses for MemoryDenyWriteExecute=):
# from then on no page may be writable and executable. Exit code 77: the kernel lacks it.
MDWE_WRAPPER = """
import ctypes, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(77)
exec(sys.argv[1])
"""
CLASSIFY = """
import runpy, sys
sys.argv = ["voicegender", "classify", "--json", sys.argv[2]]
runpy.run_module("voicegender.cli", run_name="__main__")
"""
# sources.py records with sounddevice's callback API; this is the W+X allocation it needs.
PORTAUDIO_CALLBACK = """
import sounddevice as sd
sd._ffi.callback("PaStreamCallback", lambda *args: 0)
"""


def under_mdwe(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-c", MDWE_WRAPPER, code, *args], capture_output=True, text=True)
    if r.returncode == 77:
        pytest.skip("kernel without PR_SET_MDWE (Linux >= 6.3)")
    return r


def test_memory_deny_write_execute_matches_what_the_daemon_needs(fixtures_dir: Path) -> None:
    pytest.importorskip("sounddevice", reason="sounddevice (and libportaudio2) not installed")
    mdwe = unit_settings(UNIT).get("MemoryDenyWriteExecute", ["no"])[-1] == "yes"
    callback = under_mdwe(PORTAUDIO_CALLBACK)
    if mdwe:
        assert callback.returncode == 0, (
            "MemoryDenyWriteExecute=yes breaks the microphone:\n" + callback.stderr
        )
    else:
        # Still true? Once cffi callbacks work under W^X, turn MemoryDenyWriteExecute=yes on.
        assert "write+execute" in callback.stderr, callback.stderr
    if (REPO / "models" / "voicegender.tflite").exists() and (REPO / "device" / "cli.py").exists():
        r = under_mdwe(CLASSIFY, str(fixtures_dir / "female_3575.wav"))
        assert r.returncode == 0, r.stderr[-2000:]
        assert "female" in r.stdout


# --- the MQTT network drop-in ------------------------------------------------------------------------

DROPIN = FIRMWARE / "voicegender.service.d" / "mqtt.conf"


def failing_checks(unit: Path) -> tuple[float, set[str]]:
    """Exposure and the checks systemd-analyze security marks ✗ (drop-ins beside the unit count too)."""
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True, text=True
    )
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    failing = {line.split()[1] for line in r.stdout.splitlines() if line.startswith("✗")}
    return float(m[1]), failing


def test_mqtt_dropin_opens_only_the_local_network(tmp_path: Path) -> None:
    need_tools("systemd-analyze")
    base = unit_copy(tmp_path)
    score, failing = failing_checks(base)
    (tmp_path / "voicegender.service.d").mkdir()
    (tmp_path / "voicegender.service.d" / "mqtt.conf").write_text(DROPIN.read_text())
    r = subprocess.run(["systemd-analyze", "verify", str(base)], capture_output=True, text=True)
    assert r.returncode == 0 and "Unknown" not in r.stderr, r.stderr
    with_mqtt, failing_mqtt = failing_checks(base)
    print(f"systemd-analyze security exposure: {score} without, {with_mqtt} with the MQTT drop-in")
    assert with_mqtt <= MAX_EXPOSURE
    # What gets worse is network access, and nothing else.
    assert failing_mqtt - failing <= {
        "PrivateNetwork=",
        "RestrictAddressFamilies=~AF_(INET|INET6)",
        "IPAddressDeny=",
    }
    s = unit_settings(DROPIN)
    assert s["PrivateNetwork"] == ["no"]
    assert s["RestrictAddressFamilies"] == ["", "AF_UNIX AF_INET AF_INET6"]  # reset, then exactly these
    allowed = s["IPAddressAllow"][0].split()
    private = {"localhost", "link-local", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}
    assert set(allowed) <= private
    assert unit_settings(UNIT)["IPAddressDeny"] == ["any"]  # everything else stays blocked

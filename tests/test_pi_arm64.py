"""The install on real arm64 Debian root filesystems (Bookworm: Python 3.11, Trixie: Python 3.13) run
under qemu-user-static, from the offline bundle, the way a Raspberry Pi gets it: then the arm64 build
must make the same decisions on the fixture recordings as this machine.

The root filesystems come from scripts/make_rootfs (debootstrap, cached under
~/.cache/voicegender/rootfs, keyed by suite + package list); each test run installs into a fresh copy.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pi_helpers import REPO, SCRIPTS, bundle

pytestmark = [pytest.mark.slow, pytest.mark.arm64]

SUITES = {"bookworm": "3.11", "trixie": "3.13"}
BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
VERSION = (REPO / "device" / "__init__.py").read_text().split('__version__ = "')[1].split('"')[0]
MODEL = REPO / "models" / "voicegender.tflite"
# Compare with another model (its .json beside it) instead of the shipped one, e.g. a candidate.
MODEL_OVERRIDE = os.environ.get("VOICEGENDER_ARM64_MODEL")
# QEMU_CPU: emulate the Pi 4's Cortex-A72. qemu's default "max" CPU emulates pointer authentication in
# software, which Trixie's binaries use everywhere: 5-10x slower, with nothing gained for this test.
CHROOT_ENV = [
    "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    "HOME=/root",
    "LANG=C.UTF-8",
    f"QEMU_CPU={os.environ.get('QEMU_CPU', 'cortex-a72')}",
]


def arm64_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot)"
    for tool, pkg in (("debootstrap", "debootstrap"), ("unshare", "util-linux"), ("chroot", "coreutils")):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install {pkg})"
    if not BINFMT.exists():
        return (
            "no binfmt handler for aarch64: apt-get install qemu-user-static binfmt-support, then "
            "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64"
        )
    if BINFMT.read_text().splitlines()[0].strip() != "enabled":
        return "binfmt handler qemu-aarch64 is disabled (update-binfmts --enable qemu-aarch64)"
    return None


@pytest.fixture(scope="module")
def rootfs() -> dict[str, Path]:
    """Cached pristine root filesystems, built in parallel when missing."""
    reason = arm64_unavailable()
    if reason:
        pytest.skip(reason)
    t0 = time.monotonic()
    procs = {
        suite: subprocess.Popen(
            ["bash", str(SCRIPTS / "make_rootfs"), "--suite", suite, "--arch", "arm64"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for suite in SUITES
    }
    out = {}
    for suite, p in procs.items():
        stdout, stderr = p.communicate(timeout=3600)
        if p.returncode != 0:
            pytest.fail(f"make_rootfs {suite} failed:\n{stderr[-3000:]}")
        out[suite] = Path(stdout.strip().splitlines()[-1])
    print(f"\narm64 root filesystems ready in {time.monotonic() - t0:.0f} s")
    return out


def chroot(root: Path, *cmd: str, binds: dict[str, Path] | None = None, timeout: float = 1800):
    """Run a command inside the arm64 root, in a private mount namespace (mounts vanish with it)."""
    # No /sys: XNNPACK's cpuinfo would read this x86 host's CPU topology, contradict qemu's emulated
    # CPU and crash (SIGSEGV). Without it cpuinfo gives up cleanly and LiteRT uses its own kernels.
    mounts = ['mount -t proc proc "$R/proc"', 'mount --rbind /dev "$R/dev"']
    for inside, outside in (binds or {}).items():
        mounts.append(f'mkdir -p "$R{inside}" && mount --bind "{outside}" "$R{inside}"')
    script = "set -e; " + "; ".join(mounts) + '; shift; exec chroot "$R" /usr/bin/env -i "$@"'
    return subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            str(root),
            *CHROOT_ENV,
            *cmd,
        ],
        env={**os.environ, "R": str(root)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module", params=list(SUITES))
def installed(
    request: pytest.FixtureRequest, rootfs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
):
    """(suite, root): a fresh copy of the suite's rootfs with voicegender installed from the bundle."""
    suite = request.param
    root = tmp_path_factory.mktemp(f"arm64-{suite}") / "root"
    subprocess.run(["cp", "-a", "--reflink=auto", str(rootfs[suite]), str(root)], check=True)
    t0 = time.monotonic()
    # The first-boot path of a flashed card: the bundle sits at /boot/firmware/voicegender;
    # firstrun.sh / cloud-init run `firstboot.sh enable`, and the unit it enables runs `run`.
    # PIP_NO_COMPILE: byte-compiling numpy under emulation costs time and proves nothing here.
    firstboot = "/boot/firmware/voicegender/firmware_config/firstboot/firstboot.sh"
    binds = {"/boot/firmware/voicegender": bundle()}
    r = chroot(root, "bash", firstboot, "enable", binds=binds)
    assert r.returncode == 0, r.stderr[-2000:]
    unit = root / "etc/systemd/system/voicegender-firstboot.service"
    assert "ExecStart=/bin/bash /boot/firmware/voicegender/firmware_config/firstboot/firstboot.sh run" in (
        unit.read_text()
    )
    r = chroot(root, "PIP_NO_COMPILE=1", "bash", firstboot, "run", binds=binds)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert not unit.exists()  # done: the one-shot unit removed itself
    print(f"\n{suite}: first-boot install in the arm64 chroot took {time.monotonic() - t0:.0f} s")
    yield suite, root
    shutil.rmtree(root, ignore_errors=True)


VENV = "/opt/voicegender/venv/bin"


def test_install_gives_an_arm64_venv_with_the_service_enabled(installed: tuple[str, Path]) -> None:
    suite, root = installed
    probe = (
        "import platform, sys, voicegender, numpy, ai_edge_litert, sounddevice, gpiozero, systemd.journal; "
    )
    probe += "print(platform.machine(), '%d.%d' % sys.version_info[:2], voicegender.__version__)"
    r = chroot(root, f"{VENV}/python", "-c", probe)
    assert r.returncode == 0, r.stderr[-3000:]
    machine, python, version = r.stdout.split()
    assert (machine, python) == ("aarch64", SUITES[suite])
    assert version == VERSION
    assert (root / "etc/systemd/system/multi-user.target.wants/voicegender.service").is_symlink()
    groups = (root / "etc/group").read_text()
    for g in ("audio", "gpio"):
        line = next(ln for ln in groups.splitlines() if ln.startswith(f"{g}:"))
        assert "voicegender" in line.split(":")[3].split(",")


def test_voicegender_version_runs_on_arm64(installed: tuple[str, Path]) -> None:
    _suite, root = installed
    r = chroot(root, f"{VENV}/voicegender", "--version")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == f"voicegender {VERSION}", r.stdout + r.stderr


def decisions(stdout: str) -> list[dict[str, Any]]:
    """Every JSON object carrying a decision label in the CLI's --json output (one doc or JSON lines)."""
    docs: list[Any] = []
    try:
        docs = [json.loads(stdout)]
    except json.JSONDecodeError:
        docs = [json.loads(ln) for ln in stdout.splitlines() if ln.strip().startswith(("{", "["))]
    found: list[dict[str, Any]] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if "label" in x:
                found.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(docs)
    return found


COMMANDS = {
    "classify": ["classify", "--json", "male_1320.wav", "female_3575.wav", "demo_male_then_female.wav"],
    "run": ["run", "--input", "demo_male_then_female.wav", "--fast", "--gpio", "mock", "--json"],
}


def model_args(inside_chroot: bool) -> list[str]:
    """--model for an override; none for the shipped model (the arm64 side then proves the wheel has it)."""
    if not MODEL_OVERRIDE:
        return []
    path = Path(MODEL_OVERRIDE)
    return ["--model", f"/model/{path.name}" if inside_chroot else str(path)]


@pytest.fixture(scope="module")
def x86_decisions(fixtures_dir: Path) -> dict[str, list[dict[str, Any]]]:
    if not MODEL_OVERRIDE and not MODEL.exists():
        pytest.fail(f"shipped model {MODEL} is missing (restore models/ from git)")
    out = {}
    for name, args in COMMANDS.items():
        args = [str(fixtures_dir / a) if a.endswith(".wav") else a for a in args] + model_args(False)
        r = subprocess.run(
            [str(Path(sys.executable).parent / "voicegender"), *args], capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr[-3000:]
        out[name] = decisions(r.stdout)
        assert out[name], f"no decisions in x86_64 {name} output:\n{r.stdout[:2000]}"
    return out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_arm64_makes_the_same_decisions_as_x86_64(
    installed: tuple[str, Path],
    x86_decisions: dict[str, list[dict[str, Any]]],
    fixtures_dir: Path,
    command: str,
) -> None:
    suite, root = installed
    args = [f"/fixtures/{a}" if a.endswith(".wav") else a for a in COMMANDS[command]] + model_args(True)
    binds = {"/fixtures": fixtures_dir}
    if MODEL_OVERRIDE:
        binds["/model"] = Path(MODEL_OVERRIDE).parent
    r = chroot(root, f"{VENV}/voicegender", *args, binds=binds)
    assert r.returncode == 0, r.stderr[-3000:]
    arm = decisions(r.stdout)
    ref = x86_decisions[command]
    assert [d["label"] for d in arm] == [d["label"] for d in ref], (suite, arm, ref)
    for a, b in zip(arm, ref, strict=True):
        for key, value in b.items():
            if isinstance(value, float):
                # int8 kernels may round differently between XNNPACK builds; decisions may not.
                assert math.isclose(a[key], value, abs_tol=0.01), (suite, key, a, b)
            elif key not in ("time", "timestamp", "wall_time", "file", "path", "input"):
                assert a[key] == value, (suite, key, a, b)

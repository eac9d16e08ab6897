"""Shared helpers for the tests of the Raspberry Pi deployment (tests/test_pi_*.py)."""

from __future__ import annotations

import atexit
import functools
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
FIRMWARE = REPO / "firmware_config"


def need_tools(*names: str) -> None:
    """Skip the test when a command-line tool is missing, naming the Debian package to install."""
    packages = {
        "systemd-analyze": "systemd",
        "systemd-sysusers": "systemd",
        "cloud-init": "cloud-init",
        "shellcheck": "shellcheck",
        "mcopy": "mtools",
        "sfdisk": "fdisk",
        "mkfs.fat": "dosfstools",
        "debootstrap": "debootstrap",
        "losetup": "mount",
    }
    for name in names:
        if shutil.which(name) is None:
            pytest.skip(f"{name} not found (apt-get install {packages.get(name, name)})")


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def load_script(name: str) -> ModuleType:
    """Import a Python script from scripts/ (no .py suffix) as a module."""
    path = SCRIPTS / name
    loader = importlib.machinery.SourceFileLoader(f"vg_script_{name}", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module
    loader.exec_module(module)
    return module


ALL_TARGETS = f"aarch64-cp311,aarch64-cp313,x86_64-cp{sys.version_info[0]}{sys.version_info[1]}"
"""One bundle serves every test: both Raspberry Pi OS Pythons plus this machine's, for --root tests."""


@functools.cache
def bundle() -> Path:
    """Build the offline bundle once per test session (pip's cache makes reruns quick)."""
    out = tempfile.mkdtemp(prefix="voicegender-bundle-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    r = subprocess.run(
        [sys.executable, str(SCRIPTS / "build_bundle"), "--out", out, "--targets", ALL_TARGETS, "--no-tar"],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.fail(f"build_bundle failed:\n{r.stderr[-3000:]}")
    return Path(r.stdout.strip().splitlines()[-1])

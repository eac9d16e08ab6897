"""The offline bundle and the install/uninstall scripts, exercised on this machine (x86_64) in a
--root tree; tests/test_pi_arm64.py does the same for real on arm64 root filesystems."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from pi_helpers import FIRMWARE, REPO, SCRIPTS, bundle, need_root, need_tools


def shell_scripts() -> list[Path]:
    out = []
    for base in (SCRIPTS, FIRMWARE):
        for p in sorted(base.rglob("*")):
            if p.is_file() and p.suffix not in (".py", ".md", ".txt", ".service", ".conf", ".toml"):
                first = p.read_bytes()[:64].split(b"\n")[0]
                if first.startswith(b"#!") and (b"bash" in first or first.endswith((b"/sh", b" sh"))):
                    out.append(p)
    return out


def test_shell_scripts_are_shellcheck_clean() -> None:
    need_tools("shellcheck")
    scripts = shell_scripts()
    names = {p.name for p in scripts}
    assert {"install", "uninstall", "make_rootfs", "firstrun.sh", "firstboot.sh"} <= names
    r = subprocess.run(["shellcheck", "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


X86_TAG = f"x86_64-cp{sys.version_info[0]}{sys.version_info[1]}"


@pytest.fixture(scope="module")
def x86_bundle() -> Path:
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("the --root install test uses x86_64 wheels")
    return bundle()


@pytest.mark.slow
def test_bundle_layout_and_manifest(x86_bundle: Path) -> None:
    for tag in ("aarch64-cp311", "aarch64-cp313", X86_TAG):
        wheels = sorted((x86_bundle / "wheels" / tag).glob("*.whl"))
        names = {w.name.split("-")[0].lower() for w in wheels}
        assert {"numpy", "ai_edge_litert", "sounddevice", "gpiozero", "colorzero", "cffi"} <= names, tag
        if tag.startswith("aarch64"):
            assert all(w.name.endswith(("aarch64.whl", "none-any.whl")) for w in wheels), tag
            assert any(f"cp{tag[-3:]}" in w.name for w in wheels if w.name.startswith("numpy")), tag
        pins = (x86_bundle / "wheels" / tag / "requirements.txt").read_text().split()
        assert len(pins) == len(wheels) and all("==" in p for p in pins)
    assert list((x86_bundle / "wheels" / "any").glob("voicegender-*-py3-none-any.whl"))
    assert list((x86_bundle / "wheels" / "any").glob("pip-*.whl"))
    for f in ("install.sh", "uninstall.sh", "firmware_config/voicegender.service", "README.md"):
        assert (x86_bundle / f).is_file(), f
    assert "armv7" in (x86_bundle / "README.md").read_text()
    # Every file is in the manifest with its sha256.
    listed = {}
    for line in (x86_bundle / "MANIFEST.sha256").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = {p.relative_to(x86_bundle).as_posix() for p in x86_bundle.rglob("*") if p.is_file()}
    assert set(listed) == files - {"MANIFEST.sha256"}
    for name in ("install.sh", "firmware_config/voicegender.service"):
        assert listed[name] == hashlib.sha256((x86_bundle / name).read_bytes()).hexdigest()


def sh(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True)


@pytest.mark.slow
def test_install_reinstall_uninstall_in_a_root_tree(x86_bundle: Path, tmp_path: Path) -> None:
    need_root()
    python = Path("/usr/bin/python3")
    if (
        not python.exists()
        or sh(python, "-c", "import sys, venv; assert sys.version_info >= (3, 11)").returncode
    ):
        pytest.skip("needs Debian's python3 >= 3.11 with venv")
    if sh(
        python, "-c", f"import sys; sys.exit('cp%d%d' % sys.version_info[:2] != '{X86_TAG[-5:]}')"
    ).returncode:
        pytest.skip(f"/usr/bin/python3 is not the Python the bundle's {X86_TAG} wheels are for")
    root = tmp_path / "root"
    r = sh(x86_bundle / "install.sh", "--root", root)
    assert r.returncode == 0, r.stderr
    venv_python = root / "opt/voicegender/venv/bin/python"
    r = sh(venv_python, "-c", "import voicegender, numpy, ai_edge_litert, sounddevice, gpiozero; print('ok')")
    assert r.stdout.strip() == "ok", r.stderr
    unit = (root / "etc/systemd/system/voicegender.service").read_text()
    assert "ExecStart=/opt/voicegender/venv/bin/voicegender run" in unit
    wants = root / "etc/systemd/system/multi-user.target.wants/voicegender.service"
    assert wants.is_symlink() and wants.resolve() == (root / "etc/systemd/system/voicegender.service")
    assert "voicegender:" in (root / "etc/passwd").read_text()
    assert (root / "opt/voicegender/README.md").read_text() == (REPO / "README.md").read_text()
    if (FIRMWARE / "config.toml").exists():
        assert (root / "etc/voicegender/config.toml").read_text() == (FIRMWARE / "config.toml").read_text()

    # A second run keeps the user's config and decisions.
    conf = root / "etc/voicegender/config.toml"
    conf.write_text("# my settings\n")
    decisions = root / "var/lib/voicegender/decisions.jsonl"
    decisions.write_text('{"label": "male"}\n')
    r = sh(x86_bundle / "install.sh", "--root", root)
    assert r.returncode == 0, r.stderr
    assert conf.read_text() == "# my settings\n" and decisions.exists()

    # Uninstall keeps them; --purge removes them.
    r = sh(SCRIPTS / "uninstall", "--root", root)
    assert r.returncode == 0, r.stderr
    assert not (root / "opt/voicegender").exists()
    assert not (root / "etc/systemd/system/voicegender.service").exists() and not wants.exists()
    assert conf.exists() and decisions.exists()
    r = sh(SCRIPTS / "uninstall", "--root", root, "--purge")
    assert r.returncode == 0, r.stderr
    assert not conf.exists() and not decisions.exists()


def test_install_refuses_a_corrupt_bundle(tmp_path: Path) -> None:
    need_root()
    b = tmp_path / "bundle"
    (b / "wheels").mkdir(parents=True)
    (b / "firmware_config").mkdir()
    (b / "firmware_config" / "voicegender.service").write_text("[Service]\n")
    (b / "MANIFEST.sha256").write_text(f"{'0' * 64}  firmware_config/voicegender.service\n")
    r = sh("bash", SCRIPTS / "install", "--bundle", b, "--root", tmp_path / "root")
    assert r.returncode != 0
    assert "corrupt" in r.stderr
    assert not (tmp_path / "root" / "opt").exists()


def test_install_without_bundle_outside_a_checkout_says_what_to_do(tmp_path: Path) -> None:
    need_root()
    copy = tmp_path / "install"
    copy.write_text((SCRIPTS / "install").read_text())
    r = sh("bash", copy, "--root", tmp_path / "root")
    assert r.returncode != 0
    assert "use --bundle DIR" in r.stderr

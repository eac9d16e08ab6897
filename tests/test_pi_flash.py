"""scripts/flash: writes an image and the first-boot files onto its FAT boot partition without mounting,
and refuses disks it must not touch."""

from __future__ import annotations

import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pi_helpers import FIRMWARE, SCRIPTS, load_script, need_root, need_tools

flash = load_script("flash")

BOOT_START = 8192  # sectors, as Raspberry Pi OS images
BOOT_SECTORS = 131072  # 64 MiB FAT32
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rootfstype=ext4 rootwait quiet"
SETTINGS = """\
# test settings
HOSTNAME=vg-test
USERNAME=alice
PASSWORD_HASH=$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ
SSH_PUBLIC_KEY=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnlyForTests alice@laptop
WIFI_SSID=Home "Net"
WIFI_PSK=correct horse battery
WIFI_COUNTRY=DE
TIMEZONE=Europe/Berlin
KEYMAP=de
"""
MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")


def mt(image: Path, *args: str) -> bytes:
    r = subprocess.run(
        [args[0], "-i", f"{image}@@{BOOT_START * 512}", *args[1:]], capture_output=True, env=MTOOLS_ENV
    )
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


@pytest.fixture(scope="module")
def source_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 80 MiB Raspberry Pi OS look-alike: MBR, FAT32 'bootfs' with cmdline.txt, a root partition."""
    need_tools("sfdisk", "mkfs.fat", "mcopy")
    d = tmp_path_factory.mktemp("image")
    img = d / "raspios.img"
    with img.open("wb") as f:
        f.truncate(80 << 20)
    root_start = BOOT_START + BOOT_SECTORS
    table = f"label: dos\nstart={BOOT_START}, size={BOOT_SECTORS}, type=c\nstart={root_start}, type=83\n"
    subprocess.run(["sfdisk", "-q", str(img)], input=table, text=True, check=True)
    subprocess.run(
        [
            "mkfs.fat",
            "-F",
            "32",
            "-n",
            "BOOTFS",
            "--offset",
            str(BOOT_START),
            str(img),
            str(BOOT_SECTORS // 2),
        ],
        check=True,
        capture_output=True,
    )
    (d / "cmdline.txt").write_text(CMDLINE + "\n")
    (d / "config.txt").write_text("arm_64bit=1\n")
    mt(img, "mcopy", str(d / "cmdline.txt"), str(d / "config.txt"), "::/")
    # The root partition gets a marker so we can see the image itself was copied.
    with img.open("r+b") as f:
        f.seek((BOOT_START + BOOT_SECTORS) * 512)
        f.write(b"ROOTFS-MARKER")
    return img


@pytest.fixture
def small_bundle(tmp_path: Path) -> Path:
    b = tmp_path / "voicegender-bundle-0.1.0"
    (b / "wheels" / "aarch64-cp311").mkdir(parents=True)
    (b / "install.sh").write_text("#!/bin/bash\necho installing\n")
    (b / "wheels" / "aarch64-cp311" / "numpy-2.4.6-cp311-cp311-manylinux_2_27_aarch64.whl").write_bytes(
        b"w" * 5000
    )
    (b / "MANIFEST.sha256").write_text("deadbeef  install.sh\n")
    return b


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    p = tmp_path / "voicegender-settings.txt"
    p.write_text(SETTINGS)
    return p


def run_flash(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "flash"), *args], capture_output=True, text=True, input=stdin
    )


def test_flash_to_image_file_with_firstrun(
    source_image: Path, small_bundle: Path, settings_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "card.img"
    r = run_flash(
        "--image", str(source_image), "--target", str(out), "--bundle", str(small_bundle),
        "--settings", str(settings_file), "--method", "firstrun", "--yes",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    # The image itself, including the partition we never touch, was copied.
    data = out.read_bytes()
    assert b"ROOTFS-MARKER" in data[(BOOT_START + BOOT_SECTORS) * 512 :][:64]
    names = mt(out, "mdir", "-b", "-/", "::/").decode()
    assert "::/voicegender/install.sh" in names
    assert "::/voicegender/wheels/aarch64-cp311/numpy-2.4.6-cp311-cp311-manylinux_2_27_aarch64.whl" in names
    assert mt(out, "mtype", "::/voicegender/install.sh") == (small_bundle / "install.sh").read_bytes()
    assert mt(out, "mtype", "::/firstrun.sh") == (FIRMWARE / "firstboot" / "firstrun.sh").read_bytes()
    assert "user-data" not in names
    cmdline = mt(out, "mtype", "::/cmdline.txt").decode()
    assert cmdline.count("\n") == 1 and cmdline.endswith("\n")
    assert cmdline.strip() == (
        CMDLINE + " cfg80211.ieee80211_regdom=DE systemd.run=/boot/firmware/firstrun.sh "
        "systemd.run_success_action=reboot systemd.unit=kernel-command-line.target"
    )
    settings = flash.parse_settings(mt(out, "mtype", "::/voicegender-settings.txt").decode())
    assert settings["HOSTNAME"] == "vg-test" and settings["WIFI_SSID"] == 'Home "Net"'
    # The passphrase is not left on the card, only the derived PSK.
    assert settings["WIFI_PSK"] == flash.wifi_psk('Home "Net"', "correct horse battery")
    assert b"correct horse battery" not in data


def test_flash_xz_image_with_cloud_init(
    source_image: Path, small_bundle: Path, settings_file: Path, tmp_path: Path
) -> None:
    xz = tmp_path / "raspios.img.xz"
    xz.write_bytes(lzma.compress(source_image.read_bytes(), preset=0))
    out = tmp_path / "card.img"
    r = run_flash(
        "--image", str(xz), "--target", str(out), "--bundle", str(small_bundle),
        "--settings", str(settings_file), "--method", "cloud-init", "--yes",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == source_image.stat().st_size
    user_data = mt(out, "mtype", "::/user-data").decode()
    assert user_data.startswith("#cloud-config\n")
    assert 'hostname: "vg-test"' in user_data
    assert "/boot/firmware/voicegender/firmware_config/firstboot/firstboot.sh" in user_data
    assert mt(out, "mtype", "::/meta-data").decode().startswith("instance-id: ")
    assert 'Home \\"Net\\"' in mt(out, "mtype", "::/network-config").decode()
    cmdline = mt(out, "mtype", "::/cmdline.txt").decode().strip()
    assert cmdline == CMDLINE + " cfg80211.ieee80211_regdom=DE"  # no systemd.run for cloud-init


def test_auto_method_follows_the_image(source_image: Path, settings_file: Path, tmp_path: Path) -> None:
    # An image whose boot partition ships cloud-init seed files is provisioned with cloud-init.
    seeded = tmp_path / "trixie.img"
    seeded.write_bytes(source_image.read_bytes())
    (tmp_path / "meta-data").write_text("instance-id: stock\n")
    mt(seeded, "mcopy", str(tmp_path / "meta-data"), "::/")
    for image, expect in ((source_image, "firstrun.sh"), (seeded, "user-data")):
        out = tmp_path / f"out-{image.name}"
        r = run_flash("--image", str(image), "--target", str(out), "--settings", str(settings_file), "--yes")
        assert r.returncode == 0, r.stderr
        names = mt(out, "mdir", "-b", "::/").decode().lower()
        assert f"::/{expect}" in names


def test_user_data_passes_cloud_init_schema(settings_file: Path, tmp_path: Path) -> None:
    need_tools("cloud-init")
    good = tmp_path / "user-data"
    good.write_text(flash.render_user_data(flash.parse_settings(settings_file.read_text())))
    r = subprocess.run(["cloud-init", "schema", "--config-file", str(good)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # And the validator is awake: a wrong type is reported.
    bad = tmp_path / "bad"
    bad.write_text(good.read_text().replace("ssh_pwauth: false", "ssh_pwauth: [1, 2]"))
    r = subprocess.run(["cloud-init", "schema", "--config-file", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0


def test_default_settings_file_parses_and_renders() -> None:
    s = flash.parse_settings((FIRMWARE / "voicegender-settings.txt").read_text())
    assert s["HOSTNAME"] == "voicegender"
    assert flash.render_network_config(s) is None  # no SSID: no network-config
    assert flash.render_user_data(s).startswith("#cloud-config\n")


def test_wifi_psk_matches_ieee_802_11i_test_vector() -> None:
    assert (
        flash.wifi_psk("IEEE", "password")
        == "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
    )
    hexpsk = "ab" * 32
    assert flash.wifi_psk("any", hexpsk) == hexpsk


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("HOSTNMAE=x", "expected one of"),
        ("HOSTNAME=bad_name!", "HOSTNAME"),
        ("USERNAME=root", "USERNAME"),
        ("PASSWORD_HASH=hunter2", "openssl passwd"),
        ("SSH_PUBLIC_KEY=not a key", "SSH_PUBLIC_KEY"),
        ("WIFI_SSID=x\nWIFI_COUNTRY=", "WIFI_COUNTRY"),
        ("WIFI_SSID=x\nWIFI_COUNTRY=GB\nWIFI_PSK=short", "WIFI_PSK"),
    ],
)
def test_bad_settings_are_refused_with_the_key_named(line: str, message: str) -> None:
    with pytest.raises(flash.FlashError, match=message):
        flash.parse_settings(line + "\n")


def test_dry_run_writes_nothing(source_image: Path, settings_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "card.img"
    r = run_flash(
        "--image", str(source_image), "--target", str(out), "--settings", str(settings_file), "--dry-run"
    )
    assert r.returncode == 0, r.stderr
    assert "would write" in r.stdout
    assert not out.exists()


def test_no_confirmation_no_write(source_image: Path, settings_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "card.img"
    out.write_bytes(b"keep me")
    r = run_flash("--image", str(source_image), "--target", str(out), "--settings", str(settings_file))
    assert r.returncode != 0 and "--yes" in r.stderr
    assert out.read_bytes() == b"keep me"


# --- the disk guard --------------------------------------------------------------------------------


def fake_sysfs(root: Path, disks: dict[str, dict]) -> Path:
    """A /sys with block devices: {name: {removable, partitions: [...], slaves: [...], type}}."""
    sysfs = root / "sys"
    for name, info in disks.items():
        dev = sysfs / "devices" / "fake" / "block" / name
        (dev / "device").mkdir(parents=True)
        (dev / "removable").write_text(f"{info.get('removable', 0)}\n")
        (dev / "size").write_text("62521344\n")
        (dev / "device" / "model").write_text("Fake Disk\n")
        if "type" in info:
            (dev / "device" / "type").write_text(info["type"] + "\n")
        (dev / "slaves").mkdir()
        for slave in info.get("slaves", []):
            (dev / "slaves" / slave).mkdir()
        for part in info.get("partitions", []):
            (dev / part).mkdir()
            (dev / part / "partition").write_text("1\n")
        for link_dir in (sysfs / "block", sysfs / "class" / "block"):
            link_dir.mkdir(parents=True, exist_ok=True)
            (link_dir / name).symlink_to(dev)
            for part in info.get("partitions", []):
                if link_dir.name == "block" and link_dir.parent.name == "class":
                    (link_dir / part).symlink_to(dev / part)
    return sysfs


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    return fake_sysfs(
        tmp_path,
        {
            "nvme0n1": {"partitions": ["nvme0n1p1", "nvme0n1p2"]},
            "sda": {"removable": 0, "partitions": ["sda1"]},
            "sdb": {"removable": 1, "partitions": ["sdb1", "sdb2"]},
            "sdc": {"removable": 1, "partitions": ["sdc1"]},
            "mmcblk0": {"removable": 0, "type": "SD", "partitions": ["mmcblk0p1"]},
            "sdd": {"removable": 1},
            "dm-0": {"slaves": ["sdd"]},
        },
    )


def mounts(*pairs: str) -> list[tuple[str, str]]:
    return [tuple(p.split()) for p in pairs]  # type: ignore[misc]


SYSTEM = ("/dev/nvme0n1p2 /", "/dev/nvme0n1p1 /boot/firmware")


def test_guard_accepts_an_unmounted_removable_card(sysfs: Path) -> None:
    desc = flash.check_block_device("sdb", sysfs, mounts(*SYSTEM), force=False)
    assert desc.startswith("/dev/sdb (Fake Disk, 32.0 GB)")
    # A built-in SD slot reports removable=0 but is an SD card.
    flash.check_block_device("mmcblk0", sysfs, mounts(*SYSTEM), force=False)


def test_guard_refuses_the_system_disk_even_with_force(sysfs: Path) -> None:
    with pytest.raises(flash.FlashError, match="running system"):
        flash.check_block_device("nvme0n1", sysfs, mounts(*SYSTEM), force=True)


def test_guard_refuses_a_disk_under_device_mapper_root(sysfs: Path) -> None:
    # / on /dev/dm-0 whose slave is sdd: sdd is the system disk.
    with pytest.raises(flash.FlashError, match="running system"):
        flash.check_block_device("sdd", sysfs, mounts("/dev/dm-0 /"), force=True)


def test_guard_refuses_a_mounted_card(sysfs: Path) -> None:
    with pytest.raises(flash.FlashError, match="mounted at /media/alice/bootfs"):
        flash.check_block_device("sdc", sysfs, mounts(*SYSTEM, "/dev/sdc1 /media/alice/bootfs"), force=True)


def test_guard_refuses_a_fixed_disk_unless_forced(sysfs: Path) -> None:
    with pytest.raises(flash.FlashError, match="not a removable disk"):
        flash.check_block_device("sda", sysfs, mounts(*SYSTEM), force=False)
    flash.check_block_device("sda", sysfs, mounts(*SYSTEM), force=True)


def test_guard_refuses_a_partition(sysfs: Path) -> None:
    with pytest.raises(flash.FlashError, match="is a partition; give the whole disk"):
        flash.check_block_device("sdb1", sysfs, mounts(*SYSTEM), force=True)


def root_disk() -> Path | None:
    """The block device holding / on this machine, if / is on one."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        src, mnt = line.split()[:2]
        if mnt == "/" and src.startswith("/dev/") and Path(src).exists():
            name = Path(os.path.realpath(src)).name
            disks = flash.disks_of(name, Path("/sys"))
            if len(disks) == 1:
                return Path("/dev") / disks.pop()
    return None


def test_dry_run_refuses_this_machines_root_disk(source_image: Path, settings_file: Path) -> None:
    disk = root_disk()
    if disk is None:
        pytest.skip("/ is not on a plain block device here")
    r = run_flash(
        "--image", str(source_image), "--target", str(disk), "--settings", str(settings_file),
        "--dry-run", "--force", "--yes",
    )  # fmt: skip
    assert r.returncode != 0
    assert "running system" in r.stderr


@pytest.fixture
def loop_device(tmp_path: Path):
    need_root()
    need_tools("losetup")
    backing = tmp_path / "disk.img"
    with backing.open("wb") as f:
        f.truncate(96 << 20)
    r = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"no loop devices here: {r.stderr.strip()}")
    dev = Path(r.stdout.strip())
    yield dev
    subprocess.run(["losetup", "-d", str(dev)], check=False)


def test_flash_to_a_block_device(
    loop_device: Path, source_image: Path, small_bundle: Path, settings_file: Path
) -> None:
    common = ["--image", str(source_image), "--target", str(loop_device), "--settings", str(settings_file)]
    # A loop device is not removable: refused without --force ...
    r = run_flash(*common, "--yes", "--bundle", str(small_bundle))
    assert r.returncode != 0 and "not a removable disk" in r.stderr
    # ... and written with it; mtools then reads the files back through the device node.
    r = run_flash(*common, "--yes", "--force", "--bundle", str(small_bundle), "--method", "firstrun")
    assert r.returncode == 0, r.stderr
    assert mt(loop_device, "mtype", "::/voicegender/install.sh") == (small_bundle / "install.sh").read_bytes()
    assert "systemd.run=/boot/firmware/firstrun.sh" in mt(loop_device, "mtype", "::/cmdline.txt").decode()


EXAMPLE_SETTINGS = """\
HOSTNAME=voicegender
USERNAME=pi
PASSWORD_HASH=$6$examplesalt$Xq0dN0Uj8b7aX3l0mZk9wq8H1cQ1e4W2yq0pV5mO3nT6gR8sB2aD7fE9hJ1kL3zX5vC7bN9mQ2wE4rT6yU8iO0
SSH_PUBLIC_KEY=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReplaceWithYourOwnPublicKey you@laptop
WIFI_SSID=MyWiFi
WIFI_PSK=change-me-please
WIFI_COUNTRY=GB
TIMEZONE=Europe/London
KEYMAP=gb
"""


def test_shipped_cloud_init_examples_are_what_flash_writes(tmp_path: Path) -> None:
    s = flash.parse_settings(EXAMPLE_SETTINGS)
    examples = FIRMWARE / "firstboot"
    assert (examples / "user-data.example").read_text() == flash.render_user_data(s)
    assert (examples / "network-config.example").read_text() == flash.render_network_config(s)
    assert (examples / "meta-data.example").read_text() == flash.render_meta_data("voicegender-example")
    need_tools("cloud-init")
    r = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(examples / "user-data.example")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr

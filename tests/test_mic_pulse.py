"""Real capture through sounddevice/PortAudio/ALSA from a private PulseAudio server's null sink.

Each test starts its own PulseAudio daemon (works as root too: ``--system=false`` with private
runtime/state/home dirs and a native-protocol socket in a temp dir; no D-Bus, no autospawn, no
client shared memory) that loads only a null sink ``vg_null`` and makes its monitor the default
source. ``paplay`` plays a
fixture into the sink, and ``MicSource(device="pulse")`` (ALSA's ``pulse`` PCM from the
libasound2-plugins package) records it back. Needs the Debian packages pulseaudio,
pulseaudio-utils, libasound2-plugins and libportaudio2.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from voicegender.resample import resample
from voicegender.sources import MicSource, SourceLost, list_input_devices
from voicegender.wavio import read_wav

pytestmark = pytest.mark.slow

_MISSING = [tool for tool in ("pulseaudio", "paplay", "pactl") if shutil.which(tool) is None]


class PulseServer:
    """A throwaway PulseAudio daemon with one null sink, reachable only through its own socket."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "native"
        self.log = root / "pulse.log"
        self.process: subprocess.Popen[bytes] | None = None
        for sub in ("run", "state", "home", "config"):
            (root / sub).mkdir(exist_ok=True)
        self.script = root / "vg.pa"
        self.script.write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            "load-module module-null-sink sink_name=vg_null rate=48000\n"
            "set-default-sink vg_null\n"
            "set-default-source vg_null.monitor\n"
        )
        self.client_conf = root / "client.conf"
        # autospawn: a client must never start a daemon we don't own. No shared memory: with it,
        # libpulse 16 can deadlock tearing down a connection whose server died (a client thread
        # waits in pa_memimport_free holding the mainloop lock that PortAudio's thread needs).
        self.client_conf.write_text("autospawn = no\nenable-shm = no\nenable-memfd = no\n")
        # What clients (this process, paplay, pactl) need to find this server and only this server.
        self.client_env = {"PULSE_SERVER": f"unix:{self.socket}", "PULSE_CLIENTCONFIG": str(self.client_conf)}

    def start(self) -> None:
        env = dict(
            os.environ,
            PULSE_RUNTIME_PATH=str(self.root / "run"),
            PULSE_STATE_PATH=str(self.root / "state"),
            HOME=str(self.root / "home"),
            XDG_CONFIG_HOME=str(self.root / "config"),
        )
        command = [
            "pulseaudio",
            "--daemonize=no",
            "--system=false",
            "--exit-idle-time=-1",
            "--use-pid-file=false",
            "-n",  # no default.pa: load only our script
            "-F",
            str(self.script),
            "--log-target=stderr",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"pulseaudio exited with {self.process.returncode}:\n{self.log.read_text()}"
                )
            info = subprocess.run(
                ["pactl", "info"], env=dict(os.environ, **self.client_env), capture_output=True
            )
            if info.returncode == 0 and b"vg_null.monitor" in info.stdout:
                return
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"pulseaudio did not come up within 20 s:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def pulse(monkeypatch: pytest.MonkeyPatch) -> Iterator[PulseServer]:
    if _MISSING:
        pytest.skip(f"needs {', '.join(_MISSING)} (Debian packages pulseaudio, pulseaudio-utils)")
    # A short path: unix socket paths are limited to 108 bytes and pytest's tmp_path can be long.
    root = Path(tempfile.mkdtemp(prefix="vg-pulse-"))
    server = PulseServer(root)
    for key, value in server.client_env.items():
        monkeypatch.setenv(key, value)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def first_chunk(mic: MicSource, limit: float = 10.0) -> np.ndarray:
    """Wait for audio to flow (ALSA's pulse plugin can take about a second to start delivering)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        chunk = mic.read(0.5)
        if chunk is not None:
            return chunk
    raise AssertionError(f"no audio from {mic.name!r} within {limit} s")


def test_records_what_is_played_into_the_null_sink(pulse: PulseServer, fixtures_dir: Path) -> None:
    wav = fixtures_dir / "female_3575.wav"
    ref, ref_rate = read_wav(wav)
    chunks: list[np.ndarray] = []
    listed = {d["name"]: d for d in list_input_devices()}
    assert "pulse" in listed, f"ALSA's pulse device is missing (libasound2-plugins?): {sorted(listed)}"
    with MicSource(device="pulse", chunk_seconds=0.05) as mic:
        assert mic.name == "pulse"
        rate = mic.sample_rate
        assert rate == listed["pulse"]["default_samplerate"]  # the device's own rate when none is asked
        chunks.append(first_chunk(mic))
        player = subprocess.Popen(["paplay", str(wav)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + ref.size / ref_rate + 20
            stop_at = None
            while time.monotonic() < (stop_at or deadline):
                chunk = mic.read(0.5)
                if chunk is not None:
                    chunks.append(chunk)
                if stop_at is None and player.poll() is not None:
                    stop_at = time.monotonic() + 1.0  # keep the tail that was still in the buffers
            assert player.wait(timeout=10) == 0, player.stderr.read().decode()
        finally:
            if player.poll() is None:
                player.kill()
                player.wait()
        overflows = mic.overflows
    captured = np.concatenate(chunks)
    assert captured.dtype == np.float32 and np.abs(captured).max() <= 1.0
    got = resample(captured, rate, ref_rate)
    assert got.size > ref.size

    # Where the fixture starts in the recording: the peak of the cross-correlation (via FFT).
    n = 1 << int(np.ceil(np.log2(got.size + ref.size)))
    xcorr = np.fft.irfft(np.fft.rfft(got, n) * np.conj(np.fft.rfft(ref, n)), n)[: got.size - ref.size + 1]
    lag = int(np.argmax(xcorr))
    aligned = got[lag : lag + ref.size]
    corr = float(np.corrcoef(aligned, ref)[0, 1])
    gain = float(np.sqrt(np.mean(aligned**2) / np.mean(ref**2)))
    before = got[: max(0, lag - ref_rate // 10)]
    quiet = float(np.sqrt(np.mean(before**2))) if before.size else 0.0
    print(
        f"rate {rate} Hz, lag {lag / ref_rate:.3f} s, corr {corr:.4f}, gain {gain:.3f}, overflows {overflows}"
    )
    assert overflows == 0
    assert corr > 0.9, f"captured audio does not match the fixture (correlation {corr:.3f})"
    assert 0.5 < gain < 2.0  # the null sink passes audio at unity volume
    assert quiet < 0.01 * np.sqrt(np.mean(ref**2))  # before playback the sink's monitor is silent


def test_killing_the_server_mid_capture_is_a_lost_microphone(pulse: PulseServer) -> None:
    mic = MicSource(device="pulse", chunk_seconds=0.05)
    mic.open()
    try:
        first_chunk(mic)
        pulse.stop(signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(SourceLost, match="pulse"):
            while time.monotonic() - t0 < 15:
                mic.read(0.5)
        assert time.monotonic() - t0 < 5
        # The daemon retries: once the sound server is back, reopening the same source works.
        pulse.start()
        mic.close()
        mic.open()
        assert first_chunk(mic).size > 0
    finally:
        mic.close()

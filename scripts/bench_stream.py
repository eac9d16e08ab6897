#!/usr/bin/env python3
"""End-to-end benchmark of ``voicegender run`` on a long stream of speakers the shipped model never saw.

The stream (16 kHz mono 16-bit WAV, built once into a cache directory, never into the repo) joins
held-out LibriSpeech test speakers (3-8 s cuts between pauses) and EmoDB speakers (2-3 consecutive
clips of one speaker joined with ~0.3 s pauses), each scaled to -32..-22 dBFS, over a continuous
room-noise bed (pink or brown noise at -50..-40 dBFS plus a faint mains hum), with 1-2 s of room
noise between utterances and every 3-5 utterances a 1-3 s burst (white or pink noise, a 440 Hz or
1 kHz tone, or a chord) at -30..-15 dBFS. The RNG is seeded, so the stream and timeline are
reproducible.

The sources are the shipped model's held-out speakers (``models/report/split.json``) read from the
shared data directory (``--data``, default ``$VOICEGENDER_DATA_DIR`` or ``../shared/data`` beside
the repository, as for training), which must hold ``LibriSpeech/`` and ``emodb/``.

The daemon runs as a subprocess (``run --fast --gpio mock --json --provisional --decision-log off``
with the shipped config, as from a shell: without systemd's environment variables) and its JSON
decisions are matched to the timeline: a decision belongs to the speech segment it overlaps most.
Decisions carry the evidence span but not the stream position at which they were emitted, so the
same file is also replayed in-process through ``StreamProcessor`` in the daemon's chunk size,
recording the stream position at each decision (checked to give the same decisions as the
subprocess). Also measured: real-time factor (wall and CPU time of the run over the stream
duration, median of ``--runs``), time from process start to READY=1 on a NOTIFY_SOCKET bound here
(median of a few realtime starts), and the daemon's peak RSS (the goal is for ``voicegender run
--input FILE --fast --gpio mock --json``), on a quiet machine and again (``--load-runs``) with one
busy-looping process per core started by this script. Each daemon is started by a small launcher
(``LAUNCHER``) that reports the daemon's own ``wait4`` rusage and its VmHWM read from /proc: Linux
folds the RSS of the process a child was forked from into the child's ``ru_maxrss``, so a daemon
started straight from this (large) script would report this script's size instead.
``--set section.key=value`` runs daemon and replay with a changed config, to try settings.

    .venv/bin/python scripts/bench_stream.py [--minutes 12] [--seed 0] [--runs 3] [--load-runs 3]
        [--ready-runs 5] [--data DIR] [--model PATH] [--set decision.end_of_utterance_seconds=0.5]
        [--details]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
RATE = 16000
STREAM_VERSION = 1
"""Bump when the stream recipe changes, so cached streams are rebuilt."""
ENVELOPE_FRAME, ENVELOPE_HOP = 320, 160
"""20 ms frames every 10 ms for the energy envelope that trims and cuts the source speech."""

GOALS = {
    "accuracy": 0.95,
    "rtf": 0.005,
    "rss_mb": 60.0,
    "ready_s": 1.0,
    "onset_latency_s": 1.0,
    "end_latency_s": 0.5,
}


@dataclass
class Segment:
    """One stretch of the stream's timeline."""

    kind: str
    """"speech", "noise" (room noise only) or "burst"."""
    start: float
    end: float
    corpus: str = ""
    """Speech: "EmoDB" or "LibriSpeech"; burst: what kind of sound."""
    speaker: str = ""
    gender: str = ""
    source: str = ""
    """Speech: the source files (and cut) it was made from."""


# -- building the stream --------------------------------------------------------------------------------


def envelope_db(x: np.ndarray) -> np.ndarray:
    """RMS level (dBFS) of 20 ms frames every 10 ms."""
    if x.size < ENVELOPE_FRAME:
        x = np.pad(x, (0, ENVELOPE_FRAME - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, ENVELOPE_FRAME)[::ENVELOPE_HOP]
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


def speech_runs(x: np.ndarray, min_gap: float = 0.25, below: float = 30.0) -> list[tuple[int, int]]:
    """Sample spans of active speech: frames within ``below`` dB of the loud ones, short gaps joined."""
    db = envelope_db(x)
    active = db > np.percentile(db, 95) - below
    idx = np.flatnonzero(active)
    if idx.size == 0:
        return []
    gap = round(min_gap * RATE / ENVELOPE_HOP)
    breaks = np.flatnonzero(np.diff(idx) > gap)
    firsts = np.concatenate(([idx[0]], idx[breaks + 1]))
    lasts = np.concatenate((idx[breaks], [idx[-1]]))
    margin = RATE // 50  # 20 ms either side
    return [
        (max(0, a * ENVELOPE_HOP - margin), min(x.size, b * ENVELOPE_HOP + ENVELOPE_FRAME + margin))
        for a, b in zip(firsts.tolist(), lasts.tolist(), strict=True)
    ]


def trim(x: np.ndarray) -> np.ndarray:
    runs = speech_runs(x)
    return x[runs[0][0] : runs[-1][1]] if runs else x[:0]


def active_rms_db(x: np.ndarray) -> float:
    db = envelope_db(x)
    loud = db[db > np.percentile(db, 95) - 30]
    return float(10 * np.log10(np.mean(10 ** (loud / 10))))


def read_mono(path: Path) -> np.ndarray:
    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if rate != RATE:
        raise SystemExit(f"{path}: expected {RATE} Hz, got {rate}")
    return audio.mean(axis=1)


def fail(message: str) -> NoReturn:
    raise SystemExit(f"bench_stream.py: error: {message}")


SPLIT = REPO / "models" / "report" / "split.json"
"""The shipped model's speaker split (written by ``voicegender-train ship``): its test speakers."""
DATA_NEEDS = ("LibriSpeech/SPEAKERS.TXT", "emodb/manifest.csv")
"""What building the stream reads from ``--data``."""


def test_speakers() -> tuple[list[str], Path]:
    """Held-out speakers of the shipped model, from the split beside its report in the repository."""
    try:
        return list(json.loads(SPLIT.read_text())["test"]), SPLIT
    except FileNotFoundError:
        fail(f"{SPLIT}: not found (the shipped model's speaker split; `voicegender-train ship` writes it)")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(f"{SPLIT}: unreadable ({type(exc).__name__}: {exc})")


def check_data(data: Path) -> None:
    """One clear line if ``data`` lacks what the stream is built from."""
    missing = [need for need in DATA_NEEDS if not (data / need).is_file()]
    if missing:
        fail(
            f"--data {data}: {', '.join(missing)} not found; point --data (or VOICEGENDER_DATA_DIR) at "
            "the shared data directory that holds LibriSpeech/ and emodb/"
        )


def librispeech_utterances(
    data: Path, speakers: list[str], rng: np.random.Generator
) -> list[tuple[np.ndarray, Segment]]:
    """3-8 s cuts between pauses of the test speakers' recordings."""
    root = data / "LibriSpeech"
    genders = {}
    for line in (root / "SPEAKERS.TXT").read_text().splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        fields = [f.strip() for f in line.split("|")]
        genders[fields[0]] = {"F": "female", "M": "male"}[fields[1]]
    out = []
    for name in speakers:
        if not name.startswith("librispeech_"):
            continue
        spk = name.removeprefix("librispeech_")
        for flac in sorted(root.glob(f"*/{spk}/*/*.flac")):
            audio = read_mono(flac)
            runs = speech_runs(audio)
            i = 0
            while i < len(runs):
                target = rng.uniform(3.0, 8.0) * RATE
                best = None
                for j in range(i, len(runs)):
                    span = runs[j][1] - runs[i][0]
                    if span > 8.0 * RATE:
                        break
                    if span >= 3.0 * RATE and (best is None or abs(span - target) < abs(best[1] - target)):
                        best = (j, span)
                if best is None:  # nothing 3-8 s starts here: move on
                    i += 1
                    continue
                j = best[0]
                a, b = runs[i][0], runs[j][1]
                rel = flac.relative_to(root)
                seg = Segment("speech", 0, 0, "LibriSpeech", f"librispeech-{spk}", genders[spk])
                seg.source = f"{rel}@{a / RATE:.2f}-{b / RATE:.2f}"
                out.append((audio[a:b], seg))
                i = j + 1
    return out


class EmodbUtterances:
    """2-3 consecutive clips of one EmoDB speaker (trimmed) joined by ~0.3 s pauses, speakers in turn."""

    def __init__(self, data: Path, rng: np.random.Generator) -> None:
        self.root = data / "emodb"
        self.rng = rng
        self.clips: dict[str, list[tuple[str, str]]] = {}
        with open(self.root / "manifest.csv", newline="") as f:
            for row in csv.DictReader(f):
                self.clips.setdefault(row["speaker_id"], []).append((row["path"], row["gender"]))
        self.order = sorted(self.clips)
        rng.shuffle(self.order)
        self.cursor = {s: 0 for s in self.order}
        self.turn = 0

    def next(self) -> tuple[np.ndarray, Segment] | None:
        for _ in range(len(self.order)):
            spk = self.order[self.turn % len(self.order)]
            self.turn += 1
            clips, pos = self.clips[spk], self.cursor[spk]
            parts: list[np.ndarray] = []
            names = []
            while pos < len(clips) and len(parts) < 3:
                x = trim(read_mono(self.root / clips[pos][0]))
                names.append(Path(clips[pos][0]).stem)
                pos += 1
                if x.size:
                    parts.append(x)
                if len(parts) >= 2 and sum(p.size for p in parts) >= 4.0 * RATE:
                    break
            self.cursor[spk] = pos
            if len(parts) < 2:
                continue
            pause = np.zeros(round(self.rng.uniform(0.25, 0.35) * RATE), dtype=np.float32)
            audio = np.concatenate([p if i == 0 else np.concatenate((pause, p)) for i, p in enumerate(parts)])
            seg = Segment("speech", 0, 0, "EmoDB", spk, clips[pos - 1][1], "+".join(names))
            return audio, seg
        return None


def colored_noise(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with power spectrum ~ 1/f**alpha above 20 Hz (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    shape = np.zeros_like(f)
    shape[f >= 20] = f[f >= 20] ** (-alpha / 2)
    x = np.fft.irfft(spec * shape, n)
    return x / np.sqrt(np.mean(x**2))


def db_gain(db: float) -> float:
    return 10 ** (db / 20)


def room_bed(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink or brown noise at -50..-40 dBFS, a new colour and level every 10 s (crossfaded), plus hum."""
    block, fade = 10 * RATE, RATE // 20
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    out = np.zeros(n + block + fade)
    for start in range(0, n, block):
        x = colored_noise(block + fade, rng.choice([1.0, 2.0]), rng) * db_gain(rng.uniform(-50, -40))
        if start:
            x[:fade] *= ramp
        x[-fade:] *= ramp[::-1]
        out[start : start + block + fade] += x
    t = np.arange(n) / RATE
    mains = rng.choice([50.0, 60.0])
    hum = sum(
        a * np.sin(2 * np.pi * k * mains * t + rng.uniform(0, 2 * np.pi))
        for k, a in ((1, 1.0), (2, 0.5), (3, 0.3))
    )
    hum *= db_gain(-58) / np.sqrt(np.mean(hum**2))
    return out[:n] + hum


def burst(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """1-3 s of white or pink noise, a pure tone or a chord at -30..-15 dBFS, with 10 ms ramps."""
    n = round(rng.uniform(1.0, 3.0) * RATE)
    kind = str(rng.choice(["white noise", "pink noise", "tone", "chord"]))
    t = np.arange(n) / RATE
    if kind == "white noise":
        x = rng.standard_normal(n)
    elif kind == "pink noise":
        x = colored_noise(n, 1.0, rng)
    elif kind == "tone":
        freq = float(rng.choice([440.0, 1000.0]))
        kind = f"tone {freq:g} Hz"
        x = np.sin(2 * np.pi * freq * t)
    else:
        notes = [(261.63, 329.63, 392.0), (220.0, 277.18, 329.63), (440.0, 554.37, 659.25)]
        chord = notes[rng.integers(len(notes))]
        kind = "chord " + "/".join(f"{f:g}" for f in chord)
        x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in chord)
    level = rng.uniform(-30, -15)
    x = x / np.sqrt(np.mean(x**2)) * db_gain(level)
    ramp = round(0.01 * RATE)
    x[:ramp] *= np.linspace(0, 1, ramp)
    x[-ramp:] *= np.linspace(1, 0, ramp)
    return x, f"{kind} {level:.0f} dBFS"


def build_stream(data: Path, minutes: float, seed: int) -> tuple[np.ndarray, list[Segment], str]:
    rng = np.random.default_rng(seed)
    speakers, split_path = test_speakers()
    cuts = librispeech_utterances(data, speakers, rng)
    libri = [cuts[i] for i in rng.permutation(len(cuts))]
    emodb = EmodbUtterances(data, rng)
    pieces: list[tuple[float, np.ndarray]] = []
    timeline: list[Segment] = []
    t = 0.0

    def gap(seconds: float) -> None:
        nonlocal t
        timeline.append(Segment("noise", t, t + seconds))
        t += seconds

    gap(2.0)
    until_burst = int(rng.integers(3, 6))
    while t < minutes * 60:
        item = libri.pop() if libri and rng.random() < 0.5 else emodb.next()
        if item is None and libri:
            item = libri.pop()
        if item is None:
            break
        audio, seg = item
        gain = db_gain(rng.uniform(-32, -22) - active_rms_db(audio))
        gain = min(gain, 0.89 / max(float(np.max(np.abs(audio))), 1e-9))  # peak at most -1 dBFS
        seconds = round(audio.size / RATE, 4)
        seg.start, seg.end = round(t, 4), round(t + seconds, 4)
        timeline.append(seg)
        pieces.append((t, audio * gain))
        t = seg.end
        gap(round(rng.uniform(1.0, 2.0), 3))
        until_burst -= 1
        if until_burst == 0:
            x, kind = burst(rng)
            timeline.append(Segment("burst", t, t + x.size / RATE, kind))
            pieces.append((t, x))
            t += x.size / RATE
            gap(round(rng.uniform(1.0, 2.0), 3))
            until_burst = int(rng.integers(3, 6))
    gap(2.0)
    n = round(t * RATE) + 1
    stream = room_bed(n, rng)
    for start, x in pieces:
        i = round(start * RATE)
        stream[i : i + x.size] += x
    return stream, timeline, str(split_path)


def stream_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    speakers, _ = test_speakers()
    key = hashlib.sha1(json.dumps([STREAM_VERSION, sorted(speakers)]).encode()).hexdigest()[:8]
    stem = f"stream-seed{args.seed}-{args.minutes:g}min-{key}"
    return args.cache_dir / f"{stem}.wav", args.cache_dir / f"{stem}.json"


def write_stream(args: argparse.Namespace) -> None:
    check_data(args.data)
    wav, meta = stream_paths(args)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    stream, timeline, split = build_stream(args.data, args.minutes, args.seed)
    pcm = np.clip(np.round(stream * 32768), -32768, 32767).astype("<i2")
    soundfile.write(wav, pcm, RATE, subtype="PCM_16")
    meta.write_text(json.dumps({"split": split, "timeline": [asdict(s) for s in timeline]}, indent=0))


def cached_stream(args: argparse.Namespace) -> tuple[Path, list[Segment], str]:
    """The stream and its timeline, built first if not cached."""
    wav, meta = stream_paths(args)
    if args.rebuild or not (wav.exists() and meta.exists()):
        write_stream(args)
    info = json.loads(meta.read_text())
    # The cache key holds the speaker list, so the split file in use now names the same speakers.
    return wav, [Segment(**s) for s in info["timeline"]], str(test_speakers()[1])


# -- running the daemon ---------------------------------------------------------------------------------


def daemon_command(args: argparse.Namespace, wav: Path, fast: bool) -> list[str]:
    exe = Path(sys.executable).with_name("voicegender")
    cmd = [str(exe), "run", "--config", str(args.config), "--input", str(wav), "--gpio", "mock"]
    cmd += ["--decision-log", "off"]
    if fast:
        cmd += ["--fast", "--json", "--provisional"]
    if args.model:
        cmd += ["--model", str(args.model)]
    return cmd


def clean_env(args: argparse.Namespace) -> dict[str, str]:
    """This environment without systemd's variables (as from a shell), plus ``--env`` settings."""
    systemd = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID", "JOURNAL_STREAM")
    env = {k: v for k, v in os.environ.items() if k not in systemd}
    env.update(item.partition("=")[::2] for item in args.env)
    return env


LAUNCHER = """
import json, os, signal, sys, threading, time
report, argv = sys.argv[1], sys.argv[2:]
child, hwm, rss, done = [], [0], [], threading.Event()
def forward(signum, frame):
    if child:
        os.kill(child[0], signum)
def sample():
    while not done.wait(0.02):
        try:
            with open(f"/proc/{child[0]}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm[0] = max(hwm[0], int(line.split()[1]))
                    elif line.startswith("VmRSS:"):
                        rss.append((time.monotonic(), int(line.split()[1])))
        except (OSError, ValueError):
            pass
signal.signal(signal.SIGTERM, forward)
signal.signal(signal.SIGINT, forward)
start = time.monotonic()
child.append(os.posix_spawn(argv[0], argv, os.environ))
sampler = threading.Thread(target=sample)
sampler.start()
_, status, usage = os.wait4(child[0], 0)
end = time.monotonic()
done.set()
sampler.join()
with open(report, "w") as f:
    json.dump({"start": start, "end": end, "exit": os.waitstatus_to_exitcode(status),
               "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss, "hwm_kb": hwm[0],
               "rss_kb": rss}, f)
"""
"""Starts a command, forwards SIGTERM/SIGINT to it, and writes to a file its monotonic start and end
times, its own rusage, and its VmRSS (with times) and highest VmHWM read from /proc every 20 ms. A
small process (``python -I -S``): a child's ru_maxrss starts from the RSS of the process it was
forked from. Both peaks are kept: the kernel keeps them in different counters, and they differ by a
few hundred kB at times."""


class Launched:
    """A command run through ``LAUNCHER``; ``finish()`` waits and returns what the launcher reported."""

    def __init__(self, cmd: list[str], report: Path, **popen: Any) -> None:
        report.unlink(missing_ok=True)
        self.report = report
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER, str(report), *cmd], **popen)

    def finish(self, what: str, stderr: Callable[[], str] = str) -> dict[str, Any]:
        """Wait; the launcher's report, or one error line (with ``stderr()``, what the daemon said)."""
        self.proc.wait()
        try:
            info = json.loads(self.report.read_text())
        except (OSError, ValueError):
            fail(f"{what}: the launcher reported nothing (exit {self.proc.returncode}):\n{stderr()[-2000:]}")
        if info["exit"] != 0:
            fail(f"{what}: the daemon exited {info['exit']}:\n{stderr()[-3000:]}")
        return info


class NotifyListener:
    """A systemd-style notify socket: records when (``time.monotonic()``) READY=1 arrives."""

    def __init__(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.ready_at = math.nan
        self.ready = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop:  # keep reading: a full socket buffer would block the daemon's sendto
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            if "READY=1" in message.split("\n") and not self.ready.is_set():
                self.ready_at = time.monotonic()
                self.ready.set()

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()
        self.path.unlink(missing_ok=True)


def run_fast(args: argparse.Namespace, wav: Path, workdir: Path) -> dict[str, Any]:
    """The daemon over the whole file as fast as it goes: decisions, wall/CPU time, peak RSS.

    Started as from a shell (no NOTIFY_SOCKET or other systemd variables), so the peak RSS is that of
    ``voicegender run --input FILE --fast --gpio mock --json``; ``time_ready`` times the startup.
    """
    out_path, err_path = workdir / "stdout.jsonl", workdir / "stderr.log"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        run = Launched(
            daemon_command(args, wav, fast=True),
            workdir / "run.json",
            stdout=out,
            stderr=err,
            env=clean_env(args),
        )
        info = run.finish("--fast run", err_path.read_text)
    decisions = [json.loads(line) for line in out_path.read_text().splitlines() if line.strip()]
    return {
        "decisions": decisions,
        "wall": info["end"] - info["start"],
        "cpu": info["cpu"],
        "rss_mb": max(info["maxrss_kb"], info["hwm_kb"]) / 1024,
        "maxrss_mb": info["maxrss_kb"] / 1024,
        "hwm_mb": info["hwm_kb"] / 1024,
        "growth_mb": rss_growth(info),
    }


def rss_growth(info: dict[str, Any]) -> float:
    """MB by which the daemon's RSS peak in the second half of the run (by wall time) exceeds its peak
    in 20-50% of it (nan: too few samples). Buffers that grew with the input (or a backlog) show here."""
    start, span = info["start"], info["end"] - info["start"]
    first = [kb for t, kb in info["rss_kb"] if start + 0.2 * span <= t < start + 0.5 * span]
    second = [kb for t, kb in info["rss_kb"] if t >= start + 0.5 * span]
    return (max(second) - max(first)) / 1024 if first and second else math.nan


def time_ready(args: argparse.Namespace, wav: Path, workdir: Path) -> tuple[float, float]:
    """Seconds from process start to READY=1 (realtime input, then SIGTERM); and the run's peak RSS."""
    listener = NotifyListener(workdir / "notify.sock")
    try:
        env = clean_env(args) | {"NOTIFY_SOCKET": str(listener.path)}
        run = Launched(
            daemon_command(args, wav, fast=False),
            workdir / "ready.json",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        listener.ready.wait(20.0)
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.stderr is not None
        err = run.proc.stderr.read().decode()
        info = run.finish("realtime run", lambda: err)
    finally:
        listener.close()
    if not listener.ready.is_set():
        fail(f"no READY=1 within 20 s; daemon said:\n{err[-2000:]}")
    return listener.ready_at - info["start"], max(info["maxrss_kb"], info["hwm_kb"]) / 1024


class CpuLoad:
    """One busy-looping Python process per core while the ``with`` block runs (a loaded machine)."""

    def __init__(self) -> None:
        self.count = os.cpu_count() or 1
        self.procs: list[subprocess.Popen[bytes]] = []

    def describe(self) -> str:
        return f"{self.count} busy-looping Python process{'es' if self.count > 1 else ''} (one per core)"

    def __enter__(self) -> CpuLoad:
        busy = [sys.executable, "-I", "-S", "-c", "while True: pass"]
        self.procs = [subprocess.Popen(busy) for _ in range(self.count)]
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()


def replay(args: argparse.Namespace, wav: Path) -> dict[str, Any]:
    """The daemon's pipeline in-process, in its chunk size: stream position of each decision; VAD labels."""
    from voicegender.config import load_config, with_overrides
    from voicegender.events import Decision
    from voicegender.outputs import decision_fields
    from voicegender.pipeline import StreamProcessor
    from voicegender.runner import open_model
    from voicegender.vad import VoiceActivityDetector
    from voicegender.wavio import read_wav

    config = with_overrides(
        load_config(args.config), {"model": {"path": str(args.model)} if args.model else {}}
    )
    model = open_model(config)
    audio, rate = read_wav(wav)
    proc = StreamProcessor(model, config.vad, config.decision, rate)
    vad = VoiceActivityDetector(config.vad, model.metadata.frontend)
    chunk = max(1, round(rate * config.audio.chunk_seconds))
    emitted: list[tuple[dict[str, Any], float]] = []
    labels = []
    busy = 0.0  # CPU time inside the pipeline alone (no file reading, no outputs)
    for i in range(0, audio.size + chunk, chunk):
        piece = audio[i : i + chunk]
        t0 = time.process_time()
        events = proc.push(piece) if piece.size else proc.flush()
        busy += time.process_time() - t0
        emitted += [(decision_fields(e), proc.position) for e in events if isinstance(e, Decision)]
        labels.append(vad.push(piece) if piece.size else vad.flush())
    return {
        "emitted": emitted,
        "labels": np.concatenate(labels),
        "hop": model.metadata.frontend.hop_length / model.metadata.frontend.sample_rate,
        "runtime": model.runtime,
        "model": str(model.path),
        "thresholds": config.decision.thresholds(model.metadata.thresholds),
        "chunk": chunk,
        "busy": busy,
        "windows": proc.windows_scored,
    }


# -- scoring --------------------------------------------------------------------------------------------


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def assign(decisions: list[dict[str, Any]], speech: list[Segment]) -> list[int | None]:
    """Index of the speech segment each decision overlaps most (None: it overlaps no speech)."""
    starts = np.array([s.start for s in speech])
    out: list[int | None] = []
    for d in decisions:
        lo = max(0, int(np.searchsorted(starts, d["start"])) - 2)
        best, best_ov = None, 0.0
        for k in range(lo, len(speech)):
            if speech[k].start > d["end"]:
                break
            ov = overlap(d["start"], d["end"], speech[k].start, speech[k].end)
            if ov > best_ov:
                best, best_ov = k, ov
        out.append(best)
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def fmt_s(values: list[float]) -> str:
    return f"median {pct(values, 50):.2f} s, p90 {pct(values, 90):.2f} s (n={len(values)})"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def config_with(base: Path, settings: list[str], dest: Path) -> Path:
    """``base`` with ``section.key=value`` settings (TOML values) applied, written to ``dest``."""
    from voicegender.config import load_config, render_toml, with_overrides

    overrides: dict[str, dict[str, Any]] = {}
    for item in settings:
        name, _, text = item.partition("=")
        section, _, key = name.strip().partition(".")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        overrides.setdefault(section, {})[key] = value
    dest.write_text(render_toml(with_overrides(load_config(base), overrides)))
    return dest


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=12.0, help="stream length (default 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("VOICEGENDER_DATA_DIR", REPO.parent / "shared" / "data")),
        help="shared data directory with LibriSpeech/ and emodb/ (default $VOICEGENDER_DATA_DIR or "
        "../shared/data beside the repository); read only to build the stream",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "voicegender-bench-stream"
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the stream even if cached")
    parser.add_argument("--config", type=Path, default=REPO / "firmware_config" / "config.toml")
    parser.add_argument("--model", type=Path, help="TFLite model (default: the shipped one)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value (daemon and replay), e.g. decision.end_of_utterance_seconds=0.6",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the daemon runs, e.g. GLIBC_TUNABLES=glibc.malloc.trim_threshold=16777216",
    )
    parser.add_argument("--runs", type=int, default=3, help="--fast runs over the stream (median times)")
    parser.add_argument(
        "--load-runs",
        type=int,
        default=3,
        help="--fast runs with one busy-looping process per core (peak RSS)",
    )
    parser.add_argument("--ready-runs", type=int, default=5, help="daemon starts timed to READY=1")
    parser.add_argument("--details", action="store_true", help="list every utterance, not only the misses")
    parser.add_argument("--build-only", action="store_true", help="only build the stream into --cache-dir")
    return parser.parse_args()


def describe_stream(wav: Path, timeline: list[Segment], split: str) -> None:
    speech = [s for s in timeline if s.kind == "speech"]
    print(f"stream {wav} ({timeline[-1].end / 60:.1f} min); test speakers from {split}")
    for c in ("EmoDB", "LibriSpeech"):
        segs = [s for s in speech if s.corpus == c]
        genders = [s.gender for s in segs]
        print(
            f"  {c}: {len(segs)} utterances from {len({s.speaker for s in segs})} speakers "
            f"({genders.count('female')} female, {genders.count('male')} male), "
            f"{sum(s.end - s.start for s in segs) / 60:.1f} min"
        )
    bursts = [s for s in timeline if s.kind == "burst"]
    print(f"  {len(bursts)} bursts ({sum(s.end - s.start for s in bursts):.0f} s) between them")


def measure(args: argparse.Namespace, wav: Path) -> dict[str, Any]:
    """All daemon runs (one heavy process at a time), then the in-process replay."""
    with tempfile.TemporaryDirectory(prefix="vg-bench-") as tmp:
        workdir = Path(tmp)
        if args.set:
            args.config = config_with(args.config, args.set, workdir / "config.toml")
            print(f"config: {args.config} with {', '.join(args.set)}")
        if args.env:
            print(f"daemon environment: {', '.join(args.env)}")
        quiet_avg = os.getloadavg()[0]
        runs = [run_fast(args, wav, workdir) for _ in range(args.runs)]
        load = CpuLoad()
        with load:
            loaded = [run_fast(args, wav, workdir) for _ in range(args.load_runs)]
            load_avg = os.getloadavg()[0]
        ready = [time_ready(args, wav, workdir) for _ in range(args.ready_runs)]
        rep = replay(args, wav)
    decisions = runs[0]["decisions"]
    if any(r["decisions"] != decisions for r in runs[1:] + loaded):
        print("WARNING: the daemon's decisions differ between runs; scoring the first run")
    same = same_decisions([d for d, _ in rep["emitted"]], decisions)
    if not same:
        print("WARNING: the in-process replay's decisions differ from the daemon's; emission times are the")
        print("         decisions' evidence ends instead")
    return {
        "runs": runs,
        "decisions": decisions,
        "emitted_at": [pos for _, pos in rep["emitted"]] if same else [d["end"] for d in decisions],
        "replay_same": same,
        "wall": statistics.median(r["wall"] for r in runs),
        "cpu": statistics.median(r["cpu"] for r in runs),
        "rss_mb": max(r["rss_mb"] for r in runs),
        "loaded": loaded,
        "load": load.describe(),
        "load_avg": load_avg,
        "quiet_avg": quiet_avg,
        "loaded_rss_mb": max((r["rss_mb"] for r in loaded), default=math.nan),
        "ready": [t for t, _ in ready],
        "ready_rss_mb": max(m for _, m in ready),
        "replay": rep,
    }


def same_decisions(a: list[dict], b: list[dict]) -> bool:
    """Equal but for p_female rounding: the daemon reads a --fast file in bigger chunks than the
    replay, and block boundaries in the front end can move an int8 model input by one step."""
    strip = [({**d, "p_female": 0}, {**e, "p_female": 0}) for d, e in zip(a, b, strict=False)]
    return (
        len(a) == len(b)
        and all(x == y for x, y in strip)
        and all(abs(d["p_female"] - e["p_female"]) <= 1e-3 for d, e in zip(a, b, strict=False))
    )


def score(speech: list[Segment], m: dict[str, Any]) -> tuple[list[dict[str, Any]], list[tuple[dict, float]]]:
    """Per speech segment: its final decisions, first decision and last final (with emission times),
    outcome; and the decisions that overlap no speech."""
    decisions, emitted_at = m["decisions"], m["emitted_at"]
    per_seg: list[dict[str, Any]] = [{"finals": [], "first": None, "last_final": None} for _ in speech]
    stray = []
    for d, k, at in zip(decisions, assign(decisions, speech), emitted_at, strict=True):
        if k is None:
            stray.append((d, at))
            continue
        rec = per_seg[k]
        if rec["first"] is None:
            rec["first"] = (d, at)
        if d["final"]:
            rec["finals"].append(d)
            rec["last_final"] = (d, at)
    for seg, rec in zip(speech, per_seg, strict=True):
        labels = [d["label"] for d in rec["finals"]]
        if not labels:
            rec["outcome"] = "missed"
        elif all(lab == seg.gender for lab in labels):
            rec["outcome"] = "right"
        elif any(lab not in (seg.gender, "uncertain") for lab in labels):
            rec["outcome"] = "wrong"
        else:
            rec["outcome"] = "uncertain"
        # The decision standing when the utterance is over: what the LEDs show and the last log line
        # for it (later parts of a continued utterance pool all its evidence so far).
        last = rec["last_final"][0]["label"] if rec["last_final"] else None
        rec["standing"] = "missed" if last is None else "right" if last == seg.gender else last
    return per_seg, stray


CORPORA = (("EmoDB", "EmoDB"), ("LibriSpeech", "LibriSpeech"), ("overall", None))


def print_accuracy(speech: list[Segment], per_seg: list[dict[str, Any]], thresholds: Any) -> dict[str, float]:
    """Utterance outcomes per corpus; returns the share right per corpus."""
    print(
        f"{'corpus':12s} {'utts':>5s} {'right':>6s} {'wrong':>6s} {'uncert':>7s} {'missed':>7s} "
        f"{'right %':>8s} {'uncert %':>9s} {'acc decided':>12s} {'split':>6s}"
    )
    shares = {}
    for name, keep in CORPORA:
        recs = [r for s, r in zip(speech, per_seg, strict=True) if keep is None or s.corpus == keep]
        o = [r["outcome"] for r in recs]
        n, right, wrong, unc = len(o), o.count("right"), o.count("wrong"), o.count("uncertain")
        shares[name] = right / n if n else math.nan
        standing = [r["standing"] for r in recs]
        shares[f"{name}, standing decision"] = standing.count("right") / n if n else math.nan
        print(
            f"{name:12s} {n:5d} {right:6d} {wrong:6d} {unc:7d} {o.count('missed'):7d} "
            f"{100 * shares[name]:7.1f}% {100 * unc / max(n, 1):8.1f}% "
            f"{100 * right / max(right + wrong, 1):11.1f}% {sum(len(r['finals']) > 1 for r in recs):6d}"
        )
    finals = [(d, s) for s, r in zip(speech, per_seg, strict=True) for d in r["finals"]]
    print(
        "(right = every final decision for the utterance has its true gender; acc decided = right / "
        "(right + wrong); split = utterances decided in more than one part)"
    )
    print(
        "standing decision (the utterance's last final decision, pooling all its parts): "
        + ", ".join(f"{name} {100 * shares[f'{name}, standing decision']:.1f}% right" for name, _ in CORPORA)
    )
    parts = []
    for lo, hi, name in ((1, 4, "1-4"), (5, 8, "5-8"), (9, 10**6, "9+")):
        sel = [d["label"] == s.gender for d, s in finals if lo <= d["windows"] <= hi]
        if sel:
            parts.append(f"{name} windows {100 * sum(sel) / len(sel):.0f}% of {len(sel)}")
    right = sum(d["label"] == s.gender for d, s in finals)
    print(
        f"final decisions right: {100 * right / max(len(finals), 1):.1f}% of {len(finals)}; by evidence: "
        + ", ".join(parts)
    )
    # What one decision per utterance would give (e.g. with a longer end_of_utterance_seconds): the
    # parts' log-odds pooled, weighted by their windows, at the thresholds in force.
    pooled = []
    for name, keep in CORPORA:
        right = unc = n = 0
        for s, r in zip(speech, per_seg, strict=True):
            if keep is not None and s.corpus != keep:
                continue
            n += 1
            if r["finals"]:
                p = np.clip([d["p_female"] for d in r["finals"]], 5e-5, 1 - 5e-5)
                w = np.array([d["windows"] for d in r["finals"]], dtype=float)
                label = thresholds.label(
                    float(1 / (1 + np.exp(-np.sum(w * np.log(p / (1 - p))) / np.sum(w))))
                )
                right += label == s.gender
                unc += label == "uncertain"
        pooled.append(f"{name} {100 * right / max(n, 1):.1f}% right ({unc} uncertain)")
    print(f"parts pooled into one decision per utterance: {', '.join(pooled)}")
    speakers: dict[str, list[bool]] = {}
    for d, s in finals:
        speakers.setdefault(f"{s.speaker} ({s.gender[0]})", []).append(d["label"] == s.gender)
    weak = sorted((sum(v) / len(v), name, len(v)) for name, v in speakers.items() if not all(v))
    if weak:
        print(
            "speakers with wrong or uncertain final decisions: "
            + ", ".join(f"{name} {100 * acc:.0f}% of {n}" for acc, name, n in weak)
        )
    return shares


def print_figures(
    duration: float,
    speech: list[Segment],
    per_seg: list[dict[str, Any]],
    stray: list[tuple[dict, float]],
    shares: dict[str, float],
    m: dict[str, Any],
) -> None:
    onset, onset_ev, onset_detect, end_lat, end_ev = [], [], [], [], []
    for seg, rec in zip(speech, per_seg, strict=True):
        if rec["first"] is not None:
            d, at = rec["first"]
            onset.append(at - seg.start)
            onset_ev.append(d["end"] - seg.start)
            onset_detect.append(d["start"] - seg.start)
        if rec["last_final"] is not None:
            d, at = rec["last_final"]
            end_lat.append(at - seg.end)
            end_ev.append(d["end"] - seg.end)
    rtf_wall, rtf_cpu = m["wall"] / duration, m["cpu"] / duration
    ready = statistics.median(m["ready"])
    rtf_steady = (m["wall"] - ready) / duration
    n_runs, g = len(m["runs"]), GOALS
    finals_stray = sum(d["final"] for d, _ in stray)

    rows = [
        (f"utterances right, {c}", f"{100 * v:.1f}%", ">= 95%", v >= g["accuracy"]) for c, v in shares.items()
    ]
    rows += [
        ("decisions overlapping no speech (final/all)", f"{finals_stray}/{len(stray)}", "0", not stray),
        (f"processing / audio time, wall (median of {n_runs})", f"{rtf_wall:.4f} ({m['wall']:.1f} s)",
         "<= 0.005", rtf_wall <= g["rtf"]),
        ("processing / audio time, wall after startup", f"{rtf_steady:.4f} ({ready:.2f} s to READY=1)",
         "<= 0.005", rtf_steady <= g["rtf"]),
        ("processing / audio time, CPU (user+sys)", f"{rtf_cpu:.4f} ({m['cpu']:.1f} s)", "<= 0.005",
         rtf_cpu <= g["rtf"]),
        (f"peak RSS, --fast run, quiet (max of {n_runs})", f"{m['rss_mb']:.1f} MB", "<= 60 MB",
         m["rss_mb"] <= g["rss_mb"]),
    ]  # fmt: skip
    if m["loaded"]:
        what = f"peak RSS, --fast run, under load (max of {len(m['loaded'])})"
        rows.append((what, f"{m['loaded_rss_mb']:.1f} MB", "<= 60 MB", m["loaded_rss_mb"] <= g["rss_mb"]))
    rows += [
        (f"start to READY=1 (median of {len(m['ready'])})", f"{ready:.3f} s", "<= 1 s",
         ready <= g["ready_s"]),
    ]  # fmt: skip
    for what, values, q, goal in (
        ("first decision after speech onset", onset, 50, "onset_latency_s"),
        ("first decision after speech onset", onset, 90, "onset_latency_s"),
        ("final decision after speech end", end_lat, 50, "end_latency_s"),
        ("final decision after speech end", end_lat, 90, "end_latency_s"),
    ):
        v = pct(values, q)
        rows.append(
            (f"{what}, {'median' if q == 50 else f'p{q}'}", f"{v:.2f} s", f"<= {g[goal]:g} s", v <= g[goal])
        )
    width = max(len(name) for name, _, _, _ in rows)
    print()
    print(f"{'figure':{width}s} {'value':>34s} {'goal':>9s}  result")
    for name, value, goal, ok in rows:
        print(f"{name:{width}s} {value:>34s} {goal:>9s}  {verdict(ok)}")

    rep = m["replay"]
    print()
    print(
        f"latency is stream time: the stream position when the daemon's pipeline (replayed in-process in "
        f"{rep['chunk']}-sample chunks) emitted the decision; replay == daemon output "
        f"(p_female within 0.001): {m['replay_same']}"
    )
    print(f"  onset: detected start of the first decided part - true start: {fmt_s(onset_detect)}")
    print(f"  onset: first decision's evidence end - true start: {fmt_s(onset_ev)}")
    print(f"  end: final decision's evidence end - true end: {fmt_s(end_ev)}")
    print(
        f"in-process StreamProcessor alone (no reading, no outputs): CPU {rep['busy']:.1f} s = "
        f"{rep['busy'] / duration:.4f} of audio time; {rep['windows']} model windows"
    )
    walls = ", ".join(f"{r['wall']:.2f}" for r in m["runs"])
    cpus = ", ".join(f"{r['cpu']:.2f}" for r in m["runs"])
    print(f"--fast runs: wall {walls} s; CPU {cpus} s")
    print(
        "peak RSS of each --fast run, the daemon's own: the larger of its ru_maxrss and its VmHWM read "
        "every 20 ms (both in brackets); quiet (no load from this script; load average "
        f"{m['quiet_avg']:.1f} before) "
        + ", ".join(rss_pair(r) for r in m["runs"])
        + " MB; under load "
        + ", ".join(rss_pair(r) for r in m["loaded"])
        + f" MB, with {m['load']} (load average {m['load_avg']:.1f}; wall "
        + ", ".join(f"{r['wall']:.2f}" for r in m["loaded"])
        + " s)"
    )
    growth = ", ".join(f"{r['growth_mb']:+.1f}" for r in m["runs"] + m["loaded"])
    print(f"RSS peak in the second half of each --fast run minus its peak in 20-50% of it: {growth} MB")
    times = ", ".join(f"{t:.3f}" for t in m["ready"])
    print(f"READY=1 times: {times} s; peak RSS of those (realtime) runs: {m['ready_rss_mb']:.1f} MB")
    load = os.getloadavg()
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} (at the end); interpreter {rep['runtime']}; model {rep['model']}"
    )


def rss_pair(run: dict[str, Any]) -> str:
    return f"{run['rss_mb']:.1f} ({run['maxrss_mb']:.1f}/{run['hwm_mb']:.1f})"


def print_misses(
    timeline: list[Segment],
    per_seg: list[dict[str, Any]],
    stray: list[tuple[dict, float]],
    rep: dict[str, Any],
    details: bool,
) -> None:
    speech = [s for s in timeline if s.kind == "speech"]
    labels, hop = rep["labels"], rep["hop"]

    def frames(seg: Segment) -> slice:
        return slice(round(seg.start / hop), round(seg.end / hop))

    print()
    shown = [(s, r) for s, r in zip(speech, per_seg, strict=True) if details or r["outcome"] != "right"]
    if shown:
        print(
            f"{'utterances' if details else 'utterances not right'} "
            "(vad = share of the utterance's frames the VAD labelled speech):"
        )
    for seg, rec in shown:
        finals = ", ".join(
            f"{d['label']} p={d['p_female']:.2f} [{d['start']:.2f}-{d['end']:.2f}] w={d['windows']}"
            for d in rec["finals"]
        )
        print(
            f"  {rec['outcome']:9s} {seg.corpus:11s} {seg.speaker:18s} {seg.gender:6s} "
            f"{seg.start:7.2f}-{seg.end:7.2f} ({seg.end - seg.start:.1f} s) "
            f"vad {labels[frames(seg)].mean():.2f}  "
            f"{finals or '-'}  {seg.source}"
        )
    if stray:
        print("decisions overlapping no speech:")
        for d, at in stray:
            where = [s for s in timeline if overlap(d["start"], d["end"], s.start, s.end) > 0]
            kinds = ", ".join(f"{s.kind} {s.corpus}".strip() for s in where)
            print(f"  {json.dumps(d)} emitted at {at:.2f} s, over: {kinds}")
    # Speech the VAD heard away from utterances (even when too short for a decision): frames more than
    # 0.2 s from any speech segment (closer ones are the VAD's pre-roll and hangover at the edges).
    away = np.ones(labels.size, dtype=bool)
    guard = round(0.2 / hop)
    for seg in speech:
        away[max(0, round(seg.start / hop) - guard) : round(seg.end / hop) + guard] = False
    found = []
    for seg in timeline:
        n = int(np.count_nonzero(labels[frames(seg)] & away[frames(seg)]))
        if seg.kind != "speech" and n:
            found.append(f"{seg.kind} {seg.corpus} @{seg.start:.1f} s: {n * hop:.2f} s".replace("  ", " "))
    total = np.count_nonzero(labels & away) * hop
    print(
        f"VAD speech labels >0.2 s away from speech: {total:.2f} s"
        + (f" ({'; '.join(found)})" if found else "")
    )


def main() -> None:
    args = parse_args()
    if args.build_only:
        write_stream(args)
        return
    wav, timeline, split = cached_stream(args)
    describe_stream(wav, timeline, split)
    m = measure(args, wav)
    speech = [s for s in timeline if s.kind == "speech"]
    per_seg, stray = score(speech, m)
    print()
    shares = print_accuracy(speech, per_seg, m["replay"]["thresholds"])
    print_figures(timeline[-1].end, speech, per_seg, stray, shares, m)
    print_misses(timeline, per_seg, stray, m["replay"], args.details)


if __name__ == "__main__":
    main()

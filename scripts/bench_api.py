#!/usr/bin/env python3
"""Benchmark the HTTP API on loopback: concurrent WebSocket streams, classify uploads, memory.

``voicegender serve --port 0`` runs as a subprocess; this process is the client.

- Streams: 1, 4 and 16 clients at once, each sending the demo recording (a man, a pause, a
  woman; 11.5 s) as 16 kHz s16le PCM in 0.1 s frames paced in real time, as a microphone would.
  Reported: the server's CPU time per stream per second of audio (from /proc/PID/stat), and the
  decision latency: arrival of each decision minus the time the frame holding its last sample
  (``end``) was sent, median and p90 over all decisions of the round. The reference, measured in
  this run, is the bare ``StreamProcessor`` in this process on the same audio in 0.1 s chunks: the
  ratio says what the API (WebSocket, JSON, event loop, its thread hand-offs) costs on top.
- Uploads: POST /api/v1/classify of the demo WAV back to back for ``--upload-seconds`` from 1 and
  from 2 clients; uploads/s, against ``classify_audio`` in this process (uploads/s it could do).
- Memory: the server's peak RSS (VmHWM) after everything, and the daemon's peak RSS on stdin PCM
  with [api] off, and on while it also serves 10 uploads and 4 paced streams.

    .venv/bin/python scripts/bench_api.py [--streams 1,4,16] [--upload-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from websockets.sync.client import connect

from voicegender.config import Config
from voicegender.pipeline import StreamProcessor, classify_audio
from voicegender.runner import open_model
from voicegender.wavio import read_wav

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tests" / "fixtures" / "demo_male_then_female.wav"
FRAME = 1600  # 0.1 s at 16 kHz
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise SystemExit(f"bench_api: no {key} for {pid}")


def start_server(config: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicegender.cli", "serve", "--config", str(config), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
    if not match:
        proc.kill()
        raise SystemExit(f"bench_api: the server did not start: {line!r}")
    return proc, match.group(1)


def one_stream(url: str, pcm: bytes, latencies: list[float], errors: list[str]) -> None:
    sent_at: list[float] = []
    try:
        with connect(url, open_timeout=30, max_size=None) as ws:
            ws.send(json.dumps({"sample_rate": 16000, "format": "s16le"}))
            json.loads(ws.recv(timeout=30))
            arrivals: list[tuple[float, dict]] = []

            def receive() -> None:
                for text in ws:
                    arrivals.append((time.monotonic(), json.loads(text)))

            reader = threading.Thread(target=receive)
            reader.start()
            start = time.monotonic()
            for k, i in enumerate(range(0, len(pcm), 2 * FRAME)):
                delay = start + k * 0.1 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sent_at.append(time.monotonic())
                ws.send(pcm[i : i + 2 * FRAME])
            ws.send(json.dumps({"type": "end"}))
            reader.join(timeout=60)
    except Exception as exc:  # reported, and the round's figures say how many streams failed
        errors.append(f"{type(exc).__name__}: {exc}")
        return
    for arrived, message in arrivals:
        if message.get("type") == "decision":
            frame = min(int(message["end"] / 0.1), len(sent_at) - 1)
            latencies.append(arrived - sent_at[frame])


def stream_round(base: str, pid: int, pcm: bytes, n: int) -> dict[str, float]:
    url = base.replace("http://", "ws://") + "/api/v1/stream"
    latencies: list[float] = []
    errors: list[str] = []
    cpu0 = cpu_seconds(pid)
    threads = [threading.Thread(target=one_stream, args=(url, pcm, latencies, errors)) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = cpu_seconds(pid) - cpu0
    audio_seconds = len(pcm) / 2 / 16000
    if errors:
        print(f"  {len(errors)} of {n} streams failed: {errors[0]}", file=sys.stderr)
    q = statistics.quantiles(latencies, n=10) if len(latencies) >= 2 else [float("nan")] * 9
    return {
        "cpu_per_stream": cpu / n / audio_seconds,
        "latency_median": statistics.median(latencies) if latencies else float("nan"),
        "latency_p90": q[8],
        "decisions": len(latencies),
        "failed": len(errors),
    }


def reference_cpu(model: object, audio: np.ndarray) -> float:
    """CPU seconds per second of audio of the bare StreamProcessor in 0.1 s chunks (median of 3)."""
    config = Config()
    times = []
    for _ in range(3):
        proc = StreamProcessor(model, config.vad, config.decision, 16000)
        t0 = time.process_time()
        for i in range(0, audio.size, FRAME):
            proc.push(audio[i : i + FRAME])
        proc.flush()
        times.append(time.process_time() - t0)
    return statistics.median(times) / (audio.size / 16000)


def uploads(base: str, body: bytes, seconds: float, clients: int) -> float:
    done = [0] * clients
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        while time.monotonic() < deadline:
            req = urllib.request.Request(
                base + "/api/v1/classify", data=body, headers={"Content-Type": "audio/wav"}
            )
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    resp.read()
                done[k] += 1
            except urllib.error.HTTPError as exc:
                if exc.code != 503:  # 503: both upload slots busy; try again
                    raise

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - start)


def reference_uploads(model: object, audio: np.ndarray) -> float:
    config = Config()
    n, start = 0, time.monotonic()
    while time.monotonic() - start < 3:
        classify_audio(audio, 16000, model, config.vad, config.decision)
        n += 1
    return n / (time.monotonic() - start)


def daemon_peak_rss(tmp: Path, pcm: bytes, api: bool) -> float:
    """Peak RSS (MB) of the daemon on stdin PCM; with the API on, while it also serves 10 uploads
    and 4 streams of the demo."""
    config = tmp / f"daemon-{api}.toml"
    config.write_text(f"[api]\nenabled = {'true' if api else 'false'}\nport = 0\nmax_streams = 4\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicegender.cli", "run", "--config", str(config), "--input", "-",
         "--input-rate", "16000", "--gpio", "off", "--decision-log", "off", "--log-level", "info"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=False,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stderr is not None
    base = ""
    if api:
        for raw in proc.stderr:
            match = re.search(rb"API and web page on (http://127\.0\.0\.1:\d+)", raw)
            if match:
                base = match.group(1).decode()
                break
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    proc.stdin.write(pcm * 3)
    proc.stdin.flush()
    if api:
        url = base.replace("http://", "ws://") + "/api/v1/stream"
        streams = [threading.Thread(target=one_stream, args=(url, pcm, [], [])) for _ in range(4)]
        for t in streams:
            t.start()
        body = DEMO.read_bytes()
        for _ in range(10):
            req = urllib.request.Request(
                base + "/api/v1/classify", data=body, headers={"Content-Type": "audio/wav"}
            )
            with urllib.request.urlopen(req, timeout=60) as resp:
                resp.read()
        for t in streams:
            t.join()
    else:
        time.sleep(3)
    peak = status_kb(proc.pid, "VmHWM") / 1024
    proc.stdin.close()
    proc.wait(timeout=60)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,4,16", help="concurrent stream counts, comma-separated")
    parser.add_argument("--upload-seconds", type=float, default=10.0)
    args = parser.parse_args()
    counts = [int(x) for x in args.streams.split(",")]

    audio, rate = read_wav(DEMO)
    assert rate == 16000
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2").tobytes()
    model = open_model(Config())
    ref_cpu = reference_cpu(model, audio)
    ref_uploads = reference_uploads(model, audio)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = tmp / "config.toml"
        config.write_text("[api]\nmax_streams = 16\n")
        server, base = start_server(config)
        try:
            print(f"server {base}, pid {server.pid}; load average {os.getloadavg()[0]:.2f}")
            print(f"reference: StreamProcessor alone {1000 * ref_cpu:.2f} ms CPU per s of audio")
            print("| streams | CPU per stream (ms per s of audio) | / reference | latency median | p90 |")
            print("|---:|---:|---:|---:|---:|")
            for n in counts:
                r = stream_round(base, server.pid, pcm, n)
                failed = f" ({r['failed']} failed)" if r["failed"] else ""
                print(
                    f"| {n}{failed} | {1000 * r['cpu_per_stream']:.2f} | {r['cpu_per_stream'] / ref_cpu:.2f} "
                    f"| {1000 * r['latency_median']:.0f} ms | {1000 * r['latency_p90']:.0f} ms |",
                    flush=True,
                )
            body = DEMO.read_bytes()
            print(f"\nuploads of {DEMO.name} ({len(body) / 1e6:.2f} MB, {audio.size / 16000:.1f} s):")
            print(f"  reference: classify_audio in process {ref_uploads:.1f} per s")
            for clients in (1, 2):
                rate_ = uploads(base, body, args.upload_seconds, clients)
                ratio = rate_ / ref_uploads
                print(f"  {clients} client(s): {rate_:.1f} uploads/s ({ratio:.2f} of the reference)")
            print(f"\nserver peak RSS {status_kb(server.pid, 'VmHWM') / 1024:.1f} MB")
        finally:
            server.terminate()
            server.wait(timeout=30)
        off, on = daemon_peak_rss(tmp, pcm, False), daemon_peak_rss(tmp, pcm, True)
        print(f"daemon peak RSS on stdin PCM: [api] off {off:.1f} MB", end="; ")
        print(f"on, serving 10 uploads and 4 streams {on:.1f} MB")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Time the numpy front end against librosa and python_speech_features on the same speech.

Audio: the two fixture recordings (male + female, 10 s) tiled to 60 s; "1 s" is its first second.
Each row is the median over all timed calls; the implementations are timed in interleaved rounds
(rotating order, short pause between implementations), so slow drifts in machine load and any
worker threads left spinning by the previous library hit all of them alike. Warm-up calls are
not timed. "cpu/wall" > 1 means the call used more than one core (BLAS worker threads).

Matched settings:
- ours: ``Frontend().mfcc`` (400-sample periodic Hann, hop 160, 512-point FFT, 40 Slaney mels
  60-8000 Hz, power in dB, 30 orthonormal DCT-II coefficients, frames not centred).
- librosa: ``librosa.feature.mfcc(y, sr=16000, n_fft=512, hop_length=160, win_length=400,
  center=False, n_mels=40, fmin=60, fmax=8000, n_mfcc=30)`` (same numbers up to its top_db=80 clip
  and the 56-sample window offset; the parity line checks the log-mel).
- python_speech_features: ``mfcc(signal, 16000, winlen=0.025, winstep=0.01, numcep=30, nfilt=40,
  nfft=512, lowfreq=60, highfreq=8000, preemph=0, ceplifter=0, appendEnergy=False,
  winfunc=np.hanning)``: same framing, FFT size, band count and range, coefficients; it differs
  in its HTK mel scale, unnormalised filters, natural log, symmetric Hann and end padding.
- librosa-1t: the same librosa call inside ``threadpoolctl.threadpool_limits(1)``. By default its mel
  product runs on OpenBLAS worker threads, which on a busy machine (other processes on the other
  cores) makes it many times slower; our front end never wakes them (see device/frontend.py).
- streaming: ``StreamingFrontend().push`` fed 160-sample (10 ms, one hop per push) and
  1600-sample (100 ms, the daemon's block) chunks; cost per 10 ms hop.

    .venv/bin/python scripts/bench_frontend.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import python_speech_features as psf

from voicegender.frontend import Frontend, StreamingFrontend
from voicegender.wavio import read_wav

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
SR = 16000
HOP = 160
LIBROSA = dict(sr=SR, n_fft=512, hop_length=HOP, win_length=400, center=False, n_mels=40, fmin=60, fmax=8000)


def speech(seconds: float) -> np.ndarray:
    parts = [read_wav(FIXTURES / name)[0] for name in ("male_1320.wav", "female_3575.wav")]
    one = np.concatenate(parts)
    return np.ascontiguousarray(np.tile(one, int(np.ceil(seconds * SR / one.size)))[: int(seconds * SR)])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Model"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas() -> str:
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info['name']} {info['version']}"
    except Exception:  # informational only: the layout of show_config varies between versions
        return "unknown"


class Timer:
    """Per-call wall times and the process CPU time (all threads) spent in them."""

    def __init__(
        self, fn: Callable[[], object], calls: int, per_call: float, blas_threads: int | None = None
    ) -> None:
        self.fn, self.calls, self.per_call, self.blas_threads = fn, calls, per_call, blas_threads
        self.wall: list[float] = []
        self.cpu = 0.0

    def run(self) -> None:
        if self.blas_threads is None:
            self._run()
            return
        from threadpoolctl import threadpool_limits  # comes with librosa (via scikit-learn)

        with threadpool_limits(limits=self.blas_threads):
            self._run()

    def _run(self) -> None:
        for _ in range(self.calls):
            c0, t0 = time.process_time(), time.perf_counter()
            self.fn()
            t1, c1 = time.perf_counter(), time.process_time()
            self.wall.append((t1 - t0) / self.per_call)
            self.cpu += c1 - c0

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_ratio(self) -> float:
        return self.cpu / (sum(self.wall) * self.per_call)


def table_row(cells: tuple[str, ...] | list[str], widths: tuple[int, ...]) -> str:
    """A Markdown table row: first column left-aligned, the others right-aligned."""
    padded = [
        f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ]
    return "| " + " | ".join(padded) + " |"


def streamer(audio: np.ndarray, chunk: int) -> Callable[[], object]:
    st = StreamingFrontend()
    chunks = [audio[i : i + chunk] for i in range(0, audio.size, chunk)]

    def run() -> None:
        st.reset()
        for c in chunks:
            st.push(c)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    args = parser.parse_args()

    a60 = speech(60.0)
    a1 = a60[:SR].copy()
    fe = Frontend()

    # Parity: our log-mel of audio[56:] is librosa's (window centred in the 512-sample frame).
    ours = fe.log_mel(a60[56 : 56 + 10 * SR])
    mel = librosa.feature.melspectrogram(y=a60[: 10 * SR], power=2.0, **LIBROSA)
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T
    n = min(len(ours), len(ref))
    parity = float(np.abs(ours[:n] - ref[:n]).max())

    def lib(y: np.ndarray) -> Callable[[], object]:
        return lambda: librosa.feature.mfcc(y=y, n_mfcc=30, **LIBROSA)

    def psfs(y: np.ndarray) -> Callable[[], object]:
        return lambda: psf.mfcc(
            y, SR, winlen=0.025, winstep=0.01, numcep=30, nfilt=40, nfft=512, lowfreq=60,
            highfreq=8000, preemph=0, ceplifter=0, appendEnergy=False, winfunc=np.hanning,
        )  # fmt: skip

    stream_s = 1.0  # each timed streaming call feeds 1 s = 100 hops
    groups: dict[str, dict[str, Timer]] = {
        "batch 1 s": {
            "numpy": Timer(lambda: fe.mfcc(a1), 40, 1),
            "librosa": Timer(lib(a1), 40, 1),
            "librosa1": Timer(lib(a1), 40, 1, blas_threads=1),
            "psf": Timer(psfs(a1), 40, 1),
        },
        "batch 60 s": {
            "numpy": Timer(lambda: fe.mfcc(a60), 3, 1),
            "librosa": Timer(lib(a60), 3, 1),
            "librosa1": Timer(lib(a60), 3, 1, blas_threads=1),
            "psf": Timer(psfs(a60), 2, 1),
        },
        "stream 160": {"numpy": Timer(streamer(a60[: int(stream_s * SR)], 160), 10, stream_s * SR / HOP)},
        "stream 1600": {"numpy": Timer(streamer(a60[: int(stream_s * SR)], 1600), 10, stream_s * SR / HOP)},
    }
    timers = [t for g in groups.values() for t in g.values()]
    for t in timers:  # warm-up: imports, plans, caches, numba compilation in librosa
        t.fn()
    for r in range(args.rounds):
        shift = r % len(timers)
        for t in timers[shift:] + timers[:shift]:
            time.sleep(0.2)  # OpenBLAS workers spin ~0.1 s after a threaded call before sleeping
            t.run()

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end")
    print(f"Python {platform.python_version()}, numpy {np.__version__} ({blas()}),")
    print(f"librosa {librosa.__version__}, python_speech_features {getattr(psf, '__version__', '0.6')}")
    print(f"Audio: fixture speech tiled to 60 s; {args.rounds} interleaved rounds; medians")
    print(f"Parity: max |log-mel dB - librosa| over 10 s = {parity:.1e}")
    print("librosa-1t: librosa with BLAS limited to 1 thread (threadpoolctl); psf: python_speech_features")
    print()
    cols = ("case", "numpy", "librosa", "librosa-1t", "psf", "np/librosa", "np/librosa-1t", "psf/librosa")
    widths = (10, 10, 10, 10, 10, 10, 13, 11, 17)
    header = (*cols, "cpu/wall np, lr")
    print(table_row(header, widths))
    print("|" + "|".join(("-" * (w + 1) + ":") if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|")
    for case in ("batch 1 s", "batch 60 s"):
        g = groups[case]
        lr, lr1 = g["librosa"].median, g["librosa1"].median
        cells = [
            case,
            *(f"{g[k].median * 1e3:.2f} ms" for k in ("numpy", "librosa", "librosa1", "psf")),
            f"{g['numpy'].median / lr:.2f}",
            f"{g['numpy'].median / lr1:.2f}",
            f"{g['psf'].median / lr:.2f}",
            f"{g['numpy'].cpu_ratio:.2f}, {g['librosa'].cpu_ratio:.2f}",
        ]
        print(table_row(cells, widths))
    print()
    print(f"| {'streaming chunk':<24} | {'per 10 ms hop':>13} | {'share of one core':>17} |")
    print(f"|{'-' * 26}|{'-' * 14}:|{'-' * 18}:|")
    for case, label in (("stream 160", "160 samples (1 hop/push)"), ("stream 1600", "1600 samples (100 ms)")):
        per_hop = groups[case]["numpy"].median
        print(f"| {label:<24} | {per_hop * 1e6:10.1f} us | {per_hop / 0.01 * 100:16.2f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

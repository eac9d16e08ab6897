#!/usr/bin/env python3
"""Time voicegender.resample (numpy) against scipy.signal.resample_poly on the same input.

For each input rate: median wall time of the batch resampler and of scipy on a long signal, their
ratio, the max abs difference between the two outputs, and the streaming resampler's cost per
second of audio when fed in 10 ms chunks (as from a microphone).

    .venv/bin/python scripts/bench_resample.py [--seconds 60] [--repeats 7] [--rates 44100 48000]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy.signal

from voicegender.resample import StreamingResampler, resample


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def stream(x: np.ndarray, sr: int, chunk: int) -> np.ndarray:
    r = StreamingResampler(sr)
    parts = [r.push(x[i : i + chunk]) for i in range(0, x.size, chunk)]
    parts.append(r.flush())
    return np.concatenate(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="signal length in seconds")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median)")
    parser.add_argument("--rates", type=int, nargs="+", default=[44100, 48000], help="input rates in Hz")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    print(f"{args.seconds:g} s of uniform noise in [-1, 1] -> 16000 Hz, median of {args.repeats} runs")
    header = ("rate", "numpy s", "scipy s", "numpy/scipy", "max |diff|", "stream s/s")
    print(" ".join(f"{h:>11}" for h in header))
    for sr in args.rates:
        x = rng.uniform(-1, 1, int(args.seconds * sr)).astype(np.float32)
        g = math.gcd(sr, 16000)

        def ours(x: np.ndarray = x, sr: int = sr) -> np.ndarray:
            return resample(x, sr)

        def scipys(x: np.ndarray = x, up: int = 16000 // g, down: int = sr // g) -> np.ndarray:
            return scipy.signal.resample_poly(x, up, down)

        t_ours = median_seconds(ours, args.repeats)
        t_ref = median_seconds(scipys, args.repeats)
        diff = float(np.abs(ours() - scipys()).max())
        t_stream = median_seconds(lambda x=x, sr=sr: stream(x, sr, sr // 100), max(1, args.repeats // 2))
        row = (f"{sr}", f"{t_ours:.4f}", f"{t_ref:.4f}", f"{t_ours / t_ref:.2f}", f"{diff:.2e}")
        print(" ".join(f"{v:>11}" for v in row), f"{t_stream / args.seconds:>11.5f}")


if __name__ == "__main__":
    main()

"""The streaming == batch tests again under each OpenBLAS kernel this CPU can run.

Float32 and float64 BLAS kernels (SSE3, AVX2, AVX-512, NEON) sum a product's terms in different
orders, and the order can depend on the product's shape, which differs between streaming and batch.
The front end's tolerance comes from an error analysis that holds for any order (see
``voicegender.frontend``); this runs those tests with ``OPENBLAS_CORETYPE`` forcing each kernel, so a
bound that only holds for the kernel of the machine at hand fails here.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Kernel name -> CPU flags it needs (/proc/cpuinfo) and the architectures threadpoolctl may then report
# (OpenBLAS maps a kernel to the nearest one it was built with: Zen runs the Haswell kernels).
X86_KERNELS = {
    "Prescott": ({"pni"}, {"Prescott", "Katmai"}),
    "Haswell": ({"avx2", "fma"}, {"Haswell"}),
    "Zen": ({"avx2", "fma"}, {"Zen", "Haswell"}),
    "SkylakeX": ({"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}, {"SkylakeX"}),
}
# On arm64 the generic ARMv8 kernels against the CPU's own (the test run without the variable).
ARM64_KERNELS: dict[str, tuple[set[str], set[str]]] = {"ARMV8": (set(), set())}
STREAMING_TESTS = [
    "tests/test_frontend.py::test_streaming_equals_batch_fixed_chunks",
    "tests/test_frontend.py::test_streaming_equals_batch_random_chunks",
    "tests/test_frontend.py::test_streaming_equals_batch_any_chunking",
    "tests/test_frontend.py::test_any_frame_count_matches_frame_by_frame",
    "tests/test_frontend.py::test_mfcc_is_dct_of_log_mel",
    "tests/test_frontend.py::test_other_settings_work_end_to_end",
    "tests/test_pipeline.py::test_chunking_does_not_change_results",
    "tests/test_vad.py::test_streaming_equals_batch",
]


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def _kernels() -> dict[str, tuple[set[str], set[str]]]:
    machine = platform.machine()
    return X86_KERNELS if machine == "x86_64" else ARM64_KERNELS if machine == "aarch64" else {}


@pytest.mark.slow
@pytest.mark.parametrize("kernel", sorted(set(X86_KERNELS) | set(ARM64_KERNELS)))
def test_streaming_equals_batch_under_each_blas_kernel(kernel: str) -> None:
    kernels = _kernels()
    if kernel not in kernels:
        pytest.skip(f"{kernel} is not a kernel for {platform.machine()}")
    needs, reported = kernels[kernel]
    missing = needs - _cpu_flags()
    if missing:
        pytest.skip(f"this CPU cannot run the {kernel} kernels (no {', '.join(sorted(missing))})")
    env = {**os.environ, "OPENBLAS_CORETYPE": kernel}
    probe = "import numpy, threadpoolctl; print(threadpoolctl.threadpool_info()[0].get('architecture'))"
    arch = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    if reported:  # the variable took effect
        assert arch.stdout.strip().lower() in {r.lower() for r in reported}, arch.stdout
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *STREAMING_TESTS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, f"under OPENBLAS_CORETYPE={kernel}:\n{r.stdout[-4000:]}{r.stderr[-2000:]}"
    assert " passed" in r.stdout.splitlines()[-1] and "failed" not in r.stdout.splitlines()[-1]

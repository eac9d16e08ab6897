"""Keep native libraries' chatter off the user's screen without hiding anything that matters.

The TFLite runtimes print ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` from C++
straight to file descriptor 2 the first time a process allocates an interpreter's tensors. No
Python API or environment variable silences it (``TF_CPP_MIN_LOG_LEVEL`` is not read by that
logger), and turning the XNNPACK delegate off to avoid it makes inference 2.5x slower. So the few
calls that print it run with fd 2 captured, and everything captured except those lines is written
back to stderr afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

TFLITE_NOISE = (
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    b"INFO: Initialized TensorFlow Lite runtime.",
)
"""Lines the TFLite runtimes print on stderr that tell a user nothing."""


def _flush_python_stderr() -> None:
    with contextlib.suppress(Exception):  # sys.stderr may be None or closed
        sys.stderr.flush()


@contextlib.contextmanager
def drop_stderr_lines(lines: tuple[bytes, ...] = TFLITE_NOISE) -> Iterator[None]:
    """Capture fd 2 in the block; afterwards write back every captured line not in ``lines``."""
    _flush_python_stderr()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            _flush_python_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = b"".join(
                line for line in capture.read().splitlines(keepends=True) if line.rstrip(b"\r\n") not in lines
            )
            while kept:
                kept = kept[os.write(2, kept) :]

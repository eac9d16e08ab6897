"""Keep TensorFlow's own chatter (C++ log lines, converter notes, Keras progress) out of the CLI's output."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

log = logging.getLogger(__name__)


def quiet_tensorflow(verbose: bool) -> None:
    """Before TensorFlow is first imported: drop its C++ log lines (all of them unless ``verbose``),
    its Python loggers' INFO lines, and Keras's progress printing (Keras logs instead)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if verbose else "3")
    if not verbose:
        for name in ("tensorflow", "absl", "h5py"):
            logging.getLogger(name).setLevel(logging.ERROR)
        # The converter warns that an int8 input has no statistics; the metadata carries the scaling.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
    # TensorFlow 2.21 logs its oneDNN note through absl at load, whatever TF_CPP_MIN_LOG_LEVEL says.
    with native_output_to_log(not verbose):
        import keras

    keras.config.disable_interactive_logging()


@contextlib.contextmanager
def native_output_to_log(enabled: bool = True) -> Iterator[None]:
    """Sends what native code writes straight to file descriptors 1 and 2 (the TFLite converter's and
    interpreter's notes) to the debug log instead of the terminal."""
    if not enabled:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                log.debug("native output: %s", text)

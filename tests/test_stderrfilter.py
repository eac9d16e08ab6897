"""The native-stderr filter drops only the TFLite runtime's INFO lines and passes everything else on."""

from __future__ import annotations

import os
import sys

from voicegender.stderrfilter import TFLITE_NOISE, drop_stderr_lines


def test_only_the_listed_lines_are_dropped(capfd) -> None:
    with drop_stderr_lines():
        os.write(2, TFLITE_NOISE[0] + b"\n")  # as the C++ runtime writes it, straight to fd 2
        os.write(2, b"ERROR: something the user must see\n")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU. (not exactly the line)\n")
    print("after", file=sys.stderr)
    assert capfd.readouterr().err == (
        "ERROR: something the user must see\n"
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU. (not exactly the line)\nafter\n"
    )


def test_output_is_passed_on_when_the_block_raises(capfd) -> None:
    try:
        with drop_stderr_lines():
            os.write(2, b"partial line without a newline")
            raise ValueError("boom")
    except ValueError:
        pass
    assert capfd.readouterr().err == "partial line without a newline"

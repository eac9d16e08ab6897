"""Runs inside inaSpeechSegmenter's own venv (Python 3.11, TensorFlow 2.15, numpy 1.23): not part of
the voicegender_training package's imports, and it imports nothing from it.

Reads JSON lines ``{"path": ...}`` on stdin; for each prints one JSON line: seconds of female and male
speech found by inaSpeechSegmenter 0.6.8 (its Segmenter with gender detection), and the process CPU
seconds it took (TensorFlow's threads included). The first line printed is ``{"ready": ...}`` once the
models are loaded, so their loading is not charged to the first clip.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    import warnings

    # Keras prints progress bars on stdout: results go to the original stdout, all else to stderr.
    results = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    warnings.filterwarnings("ignore")
    from inaSpeechSegmenter import Segmenter

    started = time.process_time()
    segmenter = Segmenter(vad_engine="smn", detect_gender=True, ffmpeg="ffmpeg")
    print(
        json.dumps({"ready": True, "load_cpu_seconds": time.process_time() - started}),
        file=results,
        flush=True,
    )
    for line in sys.stdin:
        path = json.loads(line)["path"]
        t0 = time.process_time()
        try:
            segments = segmenter(path)
            error = None
        except Exception as exc:  # one unreadable clip must not end the run
            segments, error = [], f"{type(exc).__name__}: {exc}"
        cpu = time.process_time() - t0
        seconds = {"female": 0.0, "male": 0.0}
        for label, start, stop in segments:
            if label in seconds:
                seconds[label] += float(stop) - float(start)
        record = {"path": path, "female_seconds": seconds["female"], "male_seconds": seconds["male"]}
        record.update(cpu_seconds=cpu, error=error)
        print(json.dumps(record), file=results, flush=True)


if __name__ == "__main__":
    main()

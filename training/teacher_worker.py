"""Runs inside the teacher's own venv (PyTorch + Resemblyzer 0.1.4): not part of the
voicegender_training package's imports, and it imports nothing from it.

Reads JSON lines ``{"path": ...}`` on stdin; for each prints one JSON line with Resemblyzer's GE2E
speaker embeddings (256 numbers, unit length) of the clip's speech: all of it, and its first 1 s and
0.5 s (what a short utterance gives). Speech is what Resemblyzer's own preprocessing keeps (volume
normalised, long silences cut by webrtcvad, 16 kHz). With ``"starts"`` (seconds) and ``"seconds"``
in the request it embeds those windows of the clip instead, silences and all (``"windows"``). The
first line printed is ``{"ready": ...}`` once the encoder is loaded.
"""

import json
import sys
import time

SPANS = {"whole": None, "1.0": 1.0, "0.5": 0.5}
"""Embedding name -> seconds of speech from the start of the clip's speech (None: all of it)."""


def main() -> None:
    import soundfile as sf
    import torch
    from librosa import resample
    from resemblyzer import VoiceEncoder
    from resemblyzer.audio import normalize_volume, trim_long_silences
    from resemblyzer.hparams import audio_norm_target_dBFS, sampling_rate

    torch.set_num_threads(1)  # one core: the caller may train on the other
    started = time.process_time()
    encoder = VoiceEncoder("cpu", verbose=False)
    print(json.dumps({"ready": True, "load_cpu_seconds": time.process_time() - started}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        path = request["path"]
        t0 = time.process_time()
        record: dict = {"path": path, "error": None}
        try:
            audio, sr = sf.read(path, dtype="float32", always_2d=True)
            # preprocess_wav's steps, keeping the clip whole where the VAD would cut (nearly) all of it
            whole = resample(audio.mean(axis=1), orig_sr=sr, target_sr=sampling_rate)
            whole = normalize_volume(whole, audio_norm_target_dBFS, increase_only=True)
            if "starts" in request:  # given windows of the clip, as they are (no silence cut)
                n = int(request["seconds"] * sampling_rate)
                parts = [whole[int(t * sampling_rate) :][:n] for t in request["starts"]]
                record["windows"] = [_rounded(encoder.embed_utterance(part), 5) for part in parts]
            else:
                wav = trim_long_silences(whole)
                if len(wav) < sampling_rate // 10:
                    wav = whole
                if len(wav) == 0:
                    raise ValueError("no audio left after preprocessing")
                record["speech_seconds"] = len(wav) / sampling_rate
                for name, seconds in SPANS.items():
                    part = wav if seconds is None else wav[: int(seconds * sampling_rate)]
                    record[name] = _rounded(encoder.embed_utterance(part), 6)
        except Exception as exc:  # one unreadable clip must not end the run
            record["error"] = f"{type(exc).__name__}: {exc}"
        record["cpu_seconds"] = time.process_time() - t0
        print(json.dumps(record), flush=True)


def _rounded(embedding, digits: int) -> list[float]:
    """An embedding as JSON numbers, short enough to cache thousands of them."""
    return [round(float(v), digits) for v in embedding]


if __name__ == "__main__":
    main()

"""The peer runner (inaSpeechSegmenter in its own venv): clip labels and the per-file result cache.

Running ina itself needs a 600 MB venv of its own: that is the benchmark's job, not the suite's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voicegender_training import peer
from voicegender_training.peer import PeerResult, run_ina
from voicegender_training.sidecar import file_key


@pytest.mark.parametrize(
    ("female", "male", "label"),
    [(3.0, 0.5, "female"), (0.2, 1.0, "male"), (0.0, 0.0, "undecided"), (1.0, 1.0, "undecided")],
)
def test_label_is_the_gender_with_more_speech(female: float, male: float, label: str) -> None:
    assert PeerResult(female, male, 0.1).label == label


def test_cached_clips_do_not_start_ina(tmp_path: Path, monkeypatch) -> None:
    clips = [tmp_path / "a.wav", tmp_path / "b.wav"]
    for i, c in enumerate(clips):
        c.write_bytes(b"x" * (i + 1))
    cache = tmp_path / "ina.jsonl"
    cache.write_text(
        "".join(
            json.dumps({"key": file_key(c), "female_seconds": i, "male_seconds": 1 - i, "cpu_seconds": 0.5})
            + "\n"
            for i, c in enumerate(clips)
        )
    )

    def no_venv(venv: Path) -> Path:
        raise AssertionError("ina was started although every clip is cached")

    monkeypatch.setattr(peer, "ensure_venv", no_venv)
    got = run_ina(clips, tmp_path / "venv", cache)
    assert [got[c].label for c in clips] == ["male", "female"]
    clips[0].write_bytes(b"changed")  # a changed file is not taken from the cache
    with pytest.raises(AssertionError, match="started"):
        run_ina(clips, tmp_path / "venv", cache)

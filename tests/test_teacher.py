"""The teacher's probe, its cross-fitting and the distillation targets (numpy only: the Resemblyzer
venv itself is the measurement script's job, not the suite's), and its embedding cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from voicegender_training import teacher
from voicegender_training.sidecar import file_key


def two_voices(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings whose first dimension says the gender (with overlap), the rest noise."""
    rng = np.random.default_rng(seed)
    female = rng.random(n) < 0.5
    x = rng.normal(size=(n, 8))
    x[:, 0] += np.where(female, 1.5, -1.5)
    return x, female


def test_probe_learns_the_gender_direction() -> None:
    x, female = two_voices(400)
    probe = teacher.fit_probe(x, female, np.ones(len(x)), l2=1.0)
    xt, ft = two_voices(400, seed=1)
    assert np.mean((probe.p_female(xt) >= 0.5) == ft) > 0.9
    assert abs(probe.coef[0]) > 5 * np.max(np.abs(probe.coef[1:]))


def test_probe_weights_change_the_fit() -> None:
    # All rows at the same point, half labelled each way: the weights alone set p.
    x = np.zeros((4, 2))
    female = np.array([True, True, False, False])
    p = teacher.fit_probe(x, female, np.array([3.0, 3.0, 1.0, 1.0]), l2=1.0).p_female(x[:1])
    assert p[0] == pytest.approx(0.75, abs=1e-3)


def test_a_stronger_penalty_gives_less_certain_answers() -> None:
    x, female = two_voices(200)
    loose = teacher.fit_probe(x, female, np.ones(len(x)), l2=0.01).p_female(x)
    tight = teacher.fit_probe(x, female, np.ones(len(x)), l2=1000.0).p_female(x)
    assert np.mean(np.abs(tight - 0.5)) < np.mean(np.abs(loose - 0.5))


def test_cross_fitted_targets_never_come_from_the_speakers_own_clips() -> None:
    # 40 speakers; one woman's clips carry a dimension nobody else has and sound male otherwise.
    # A probe that saw her would use that dimension to call her female; cross-fitted, it cannot.
    x, female = two_voices(200)
    x = np.hstack([x, np.zeros((200, 1))])
    speaker = [f"s{i % 40}" for i in range(200)]
    odd = np.array([s == "s7" for s in speaker])
    female[odd] = True
    x[odd, 0] = -1.5
    x[odd, -1] = 4.0
    w = np.ones(len(x))
    seen = teacher.fit_probe(x, female, w, l2=0.01).p_female(x)[odd]
    unseen = teacher.cross_fitted(x, female, w, speaker, l2=0.01)[odd]
    assert np.all(seen > 0.5)
    assert np.all(unseen < 0.5)


def test_cross_fitting_is_repeatable_and_covers_every_row() -> None:
    x, female = two_voices(60)
    speaker = [f"s{i % 12}" for i in range(60)]
    a = teacher.cross_fitted(x, female, np.ones(60), speaker, l2=1.0, seed=3)
    b = teacher.cross_fitted(x, female, np.ones(60), speaker, l2=1.0, seed=3)
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)


def test_soft_targets_move_the_label_towards_the_teacher() -> None:
    female = np.array([1.0, 0.0, 1.0])
    p = np.array([0.9, 0.8, 0.1])
    np.testing.assert_allclose(teacher.soft_targets(female, p, 0.0), female)
    np.testing.assert_allclose(teacher.soft_targets(female, p, 1.0), p, rtol=1e-6)
    np.testing.assert_allclose(teacher.soft_targets(female, p, 0.5), [0.95, 0.4, 0.55], rtol=1e-6)
    with pytest.raises(ValueError, match=r"alpha 1\.5"):
        teacher.soft_targets(female, p, 1.5)


def test_cached_clips_do_not_start_the_teacher(tmp_path: Path, monkeypatch) -> None:
    clips = [tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "bad.wav"]
    for i, c in enumerate(clips):
        c.write_bytes(b"x" * (i + 1))
    cache = tmp_path / "emb.jsonl"
    records = [{span: [float(i)] * 4 for span in teacher.SPANS} | {"error": None} for i in range(2)]
    records.append({"error": "LibsndfileError: unreadable"})
    cache.write_text(
        "".join(json.dumps({"key": file_key(c), **r}) + "\n" for c, r in zip(clips, records, strict=True))
    )

    def no_venv(venv: Path) -> Path:
        raise AssertionError("the teacher was started although every clip is cached")

    monkeypatch.setattr(teacher, "ensure_venv", no_venv)
    got = teacher.embed(clips, tmp_path / "venv", cache)
    assert set(got) == set(clips[:2])  # the unreadable clip is left out, not fatal
    np.testing.assert_array_equal(got[clips[1]]["0.5"], [1.0] * 4)
    clips[0].write_bytes(b"changed")  # a changed file is not taken from the cache
    with pytest.raises(AssertionError, match="started"):
        teacher.embed(clips, tmp_path / "venv", cache)


def test_a_teacher_head_shapes_training_but_leaves_the_device_network_as_it_was() -> None:
    from voicegender_training.train import TrainSettings, fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 98, 13)).astype(np.float32)
    y = (rng.random(256) < 0.5).astype(np.float32)
    x[:, :, 1] += 2 * y[:, None]
    emb = rng.normal(size=(256, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    s = TrainSettings(epochs=1, batch_size=64)
    plain, _, _ = fit(x, y, x[:32], y[:32], s, steps=4)
    taught, _, hist = fit(x, y, x[:32], y[:32], s, steps=4, teacher_embeddings=emb, teacher_weight=1.0)
    assert taught.output.shape == plain.output.shape == (None, 1)
    assert taught.count_params() == plain.count_params()
    assert "acc" in hist and "val_acc" in hist
    # Same seed, same data: only the teacher's loss makes the networks differ.
    diff = [np.max(np.abs(a - b)) for a, b in zip(plain.get_weights(), taught.get_weights(), strict=True)]
    assert max(diff) > 1e-4

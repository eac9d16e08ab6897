"""Fit the CNN on normalised MFCC windows, deterministically from a seed."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from voicegender.errors import VoicegenderError
from voicegender.model import normalise_windows

from .cnn import CnnSettings, build_cnn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings."""

    epochs: int = 8
    """Passes over the training windows."""
    batch_size: int = 128
    """Windows per gradient step."""
    learning_rate: float = 3e-3
    """Peak learning rate (Adam), decayed with a cosine schedule."""
    label_smoothing: float = 0.05
    """Keeps logits from growing without bound, so int8 output quantisation has resolution left."""
    weight_decay: float = 0.02
    """Decoupled weight decay (AdamW); 0 disables it."""
    relative_c0: bool = True
    """Make c0 relative to the window mean (gain invariance); stored in the model metadata."""
    seed: int = 1
    """Seed for weights, shuffling and dropout."""


@dataclass(frozen=True)
class Normaliser:
    """Per-coefficient statistics of the training windows."""

    mean: np.ndarray
    std: np.ndarray
    relative_c0: bool

    @classmethod
    def fit(cls, x: np.ndarray, relative_c0: bool) -> Normaliser:
        flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
        return cls(flat.mean(0).astype(np.float32), (flat.std(0) + 1e-3).astype(np.float32), relative_c0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return normalise_windows(x, self.mean, self.std, self.relative_c0)[..., None]


def set_determinism(seed: int) -> None:
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def total_steps(n_windows: int, settings: TrainSettings, steps: int | None = None) -> int:
    """Gradient steps ``fit`` takes: ``steps`` if given, else ``settings.epochs`` passes over the windows."""
    return steps or settings.epochs * int(np.ceil(n_windows / settings.batch_size))


def fit(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    settings: TrainSettings,
    cnn: CnnSettings | None = None,
    steps: int | None = None,
    sample_weight: np.ndarray | None = None,
    teacher_embeddings: np.ndarray | None = None,
    teacher_weight: float = 1.0,
):
    """Train and return (keras model, normaliser, history dict). ``steps`` runs exactly that many
    gradient steps (over as many epochs as it takes; the last one may be partial) instead of
    ``settings.epochs`` epochs; ``sample_weight`` weighs each training window (``weights.py``).
    With ``teacher_embeddings`` ((n, d) unit vectors, one per training window; zeros where there is
    none) the network also learns to predict them from its pooled features (cosine distance times
    ``teacher_weight``) through an extra head, dropped afterwards: the model returned is the usual one.
    Progress is one log line per epoch."""
    if steps is not None and steps < 1:
        raise VoicegenderError(f"--steps {steps}: must be at least 1")
    set_determinism(settings.seed)
    norm = Normaliser.fit(x_train, settings.relative_c0)
    student = build_cnn(x_train.shape[1], x_train.shape[2], cnn)
    model = student
    loss = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=settings.label_smoothing)
    accuracy = keras.metrics.BinaryAccuracy(threshold=0.0, name="acc")
    if teacher_embeddings is not None:
        features = student.get_layer("logit_female").input
        embedding = keras.layers.Dense(teacher_embeddings.shape[1], name="teacher_embedding")(features)
        model = keras.Model(student.input, keras.layers.Concatenate()([student.output, embedding]))
        loss, accuracy = _with_teacher_loss(settings.label_smoothing, teacher_weight), _first_column_accuracy
        y_train = np.hstack([y_train.reshape(-1, 1), teacher_embeddings]).astype(np.float32)
        if y_val is not None:
            y_val = np.hstack([y_val.reshape(-1, 1), np.zeros((len(y_val), teacher_embeddings.shape[1]))])
    batches = int(np.ceil(len(x_train) / settings.batch_size))
    n_steps = total_steps(len(x_train), settings, steps)
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, n_steps, alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=settings.weight_decay)
        if settings.weight_decay
        else keras.optimizers.Adam(schedule),
        loss=loss,
        metrics=[accuracy],
    )
    val = (norm(x_val), y_val.astype(np.float32)) if x_val is not None and len(x_val) else None
    epochs = settings.epochs if steps is None else int(np.ceil(steps / batches))
    history = model.fit(
        norm(x_train),
        y_train.astype(np.float32),
        sample_weight=sample_weight,
        batch_size=settings.batch_size,
        epochs=epochs,
        validation_data=val,
        shuffle=True,
        verbose=0,
        callbacks=[_Progress(epochs, n_steps)],
    )
    return student, norm, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def _with_teacher_loss(label_smoothing: float, teacher_weight: float):
    """Binary cross-entropy on the logit (column 0) plus ``teacher_weight`` times the cosine distance
    between the extra head's output (columns 1:) and the teacher's embedding."""
    per_window = keras.losses.BinaryCrossentropy(
        from_logits=True, label_smoothing=label_smoothing, reduction=None
    )

    def loss(y, out):
        cosine = keras.ops.sum(keras.ops.normalize(out[:, 1:], axis=-1) * y[:, 1:], axis=-1)
        return per_window(y[:, :1], out[:, :1]) + teacher_weight * (1.0 - cosine)

    return loss


def _first_column_accuracy(y, out):
    """Training accuracy of the logit (column 0) when the network has the teacher's head too."""
    return keras.ops.mean(keras.ops.cast((out[:, 0] > 0) == (y[:, 0] > 0.5), "float32"))


_first_column_accuracy.__name__ = "acc"


class _Progress(keras.callbacks.Callback):
    """Logs one line per epoch and stops training after exactly ``steps`` gradient steps."""

    def __init__(self, epochs: int, steps: int) -> None:
        super().__init__()
        self.epochs, self.steps, self.done = epochs, steps, 0

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.done += 1
        if self.done >= self.steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs or {}
        val = f", validation accuracy {logs['val_acc']:.3f}" if "val_acc" in logs else ""
        log.info(
            "epoch %d/%d (step %d/%d): training accuracy %.3f, loss %.3f%s",
            epoch + 1,
            self.epochs,
            self.done,
            self.steps,
            logs.get("acc", float("nan")),
            logs.get("loss", float("nan")),
            val,
        )


def keras_scorer(model, norm: Normaliser) -> Callable[[np.ndarray], np.ndarray]:
    """MFCC windows -> log-odds of female from a trained float model (an evaluation ``WindowScorer``)."""

    def score(windows: np.ndarray) -> np.ndarray:
        return model.predict(norm(windows), verbose=0, batch_size=256).reshape(-1)

    return score

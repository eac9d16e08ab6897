"""Keras model -> full-integer int8 TFLite file + the metadata JSON the device reads."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from voicegender.frontend import FrontendSettings
from voicegender.model import ModelMetadata, Thresholds, metadata_path, seal

from .train import Normaliser


def to_int8_tflite(model, representative: np.ndarray, seed: int = 0) -> bytes:
    """Full-integer quantisation (int8 weights, activations, input and output).

    ``representative`` holds normalised model inputs (n, frames, features, 1); a few hundred
    windows spanning both classes and the augmentations calibrate the activation ranges.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    sample = representative[rng.permutation(len(representative))[:400]].astype(np.float32)

    def dataset():
        for window in sample:
            yield [window[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def write_model(
    path: Path,
    tflite: bytes,
    frontend: FrontendSettings,
    window_frames: int,
    hop_frames: int,
    norm: Normaliser,
    thresholds: Thresholds,
    info: dict[str, Any],
) -> ModelMetadata:
    """Write ``path`` (.tflite) and its metadata JSON beside it; return the metadata.

    The JSON records the .tflite's size and sha256 and a sha256 of the input settings
    (``voicegender.model.seal``), so the device refuses a model file or settings changed since.
    """
    import keras
    import tensorflow as tf

    meta = ModelMetadata(
        frontend=frontend,
        window_frames=window_frames,
        hop_frames=hop_frames,
        feature_mean=tuple(float(v) for v in norm.mean),
        feature_std=tuple(float(v) for v in norm.std),
        relative_c0=norm.relative_c0,
        thresholds=thresholds,
        extra={
            "labels": ["male", "female"],
            "versions": {
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
            **info,
        },
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tflite)
    sealed = seal(meta.to_dict(), tflite)
    metadata_path(path).write_text(json.dumps(sealed, indent=2, sort_keys=True) + "\n")
    return ModelMetadata.from_dict(sealed)

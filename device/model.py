"""Load the int8 TFLite model and its metadata; turn MFCC windows into log-odds of "female".

The metadata JSON beside the model carries the front-end settings it was trained with; a model
whose settings, front-end version or tensor shapes don't match is refused with one clear error.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import VoicegenderError
from .frontend import FRONTEND_VERSION, FrontendSettings

METADATA_FORMAT = "voicegender-model"
METADATA_VERSION = 1
DEFAULT_MODEL = Path(str(resources.files("voicegender.models") / "voicegender.tflite"))
"""The shipped model: ``models/`` is installed as the package ``voicegender.models``."""


@dataclass(frozen=True)
class Thresholds:
    """The "uncertain" band on p(female) for a decision."""

    male_below: float = 0.35
    """p_female at or below this is "male"."""
    female_above: float = 0.65
    """p_female at or above this is "female"; in between is "uncertain"."""

    def __post_init__(self) -> None:
        if not 0.0 < self.male_below <= self.female_above < 1.0:
            raise VoicegenderError(
                f"thresholds: need 0 < male_below ({self.male_below}) <= female_above "
                f"({self.female_above}) < 1"
            )

    def label(self, p_female: float) -> str:
        if p_female >= self.female_above:
            return "female"
        if p_female <= self.male_below:
            return "male"
        return "uncertain"


@dataclass(frozen=True)
class ModelMetadata:
    """What the device needs to know about a model, read from the JSON beside it."""

    frontend: FrontendSettings
    """Front-end settings the model was trained with."""
    window_frames: int
    """Frames per model input window (98 frames = 1 s at a 10 ms hop)."""
    hop_frames: int
    """Frames between successive windows when sliding over a stream."""
    feature_mean: tuple[float, ...]
    """Per-coefficient mean subtracted before the model (from the training set)."""
    feature_std: tuple[float, ...]
    """Per-coefficient scale divided out before the model (from the training set)."""
    relative_c0: bool = True
    """Subtract the window's mean of c0 (overall level) so the input does not depend on gain."""
    thresholds: Thresholds = field(default_factory=Thresholds)
    """Default decision thresholds chosen on validation data."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Everything else in the file (training data summary, metrics, versions): informational."""

    @property
    def window_seconds(self) -> float:
        s = self.frontend
        return ((self.window_frames - 1) * s.hop_length + s.win_length) / s.sample_rate

    @property
    def hop_seconds(self) -> float:
        return self.hop_frames * self.frontend.hop_length / self.frontend.sample_rate

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "format": METADATA_FORMAT,
            "format_version": METADATA_VERSION,
            "frontend_version": FRONTEND_VERSION,
            "frontend": self.frontend.to_dict(),
            "window_frames": self.window_frames,
            "hop_frames": self.hop_frames,
            "feature_mean": list(self.feature_mean),
            "feature_std": list(self.feature_std),
            "relative_c0": self.relative_c0,
            "thresholds": dataclasses.asdict(self.thresholds),
            "output": "logit_female",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model metadata") -> ModelMetadata:
        def need(key: str) -> Any:
            if key not in data:
                raise VoicegenderError(f"{source}: missing key '{key}'")
            return data[key]

        if need("format") != METADATA_FORMAT or need("format_version") != METADATA_VERSION:
            raise VoicegenderError(
                f"{source}: not {METADATA_FORMAT} version {METADATA_VERSION} metadata "
                f"(format={data.get('format')!r}, format_version={data.get('format_version')!r})"
            )
        if need("frontend_version") != FRONTEND_VERSION:
            raise VoicegenderError(
                f"{source}: model was made for front-end version {data['frontend_version']}, this device "
                f"has version {FRONTEND_VERSION}; retrain or update the device software"
            )
        if need("output") != "logit_female":
            raise VoicegenderError(f"{source}: unsupported model output {data['output']!r}")
        try:
            frontend = FrontendSettings.from_dict(dict(need("frontend")))
            thresholds = Thresholds(**need("thresholds"))
            meta = cls(
                frontend=frontend,
                window_frames=int(need("window_frames")),
                hop_frames=int(need("hop_frames")),
                feature_mean=tuple(float(v) for v in need("feature_mean")),
                feature_std=tuple(float(v) for v in need("feature_std")),
                relative_c0=bool(data.get("relative_c0", True)),
                thresholds=thresholds,
                extra={k: v for k, v in data.items() if k not in _CORE_KEYS},
            )
        except VoicegenderError as exc:
            raise VoicegenderError(f"{source}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise VoicegenderError(f"{source}: bad value ({exc})") from None
        n = frontend.n_mfcc
        if len(meta.feature_mean) != n or len(meta.feature_std) != n:
            raise VoicegenderError(f"{source}: feature_mean/feature_std must have n_mfcc={n} values")
        if not all(math.isfinite(v) and v > 0 for v in meta.feature_std):
            raise VoicegenderError(f"{source}: feature_std values must be finite and > 0")
        if meta.window_frames < 1 or meta.hop_frames < 1:
            raise VoicegenderError(f"{source}: window_frames and hop_frames must be >= 1")
        return meta

    def normalise(self, windows: np.ndarray) -> np.ndarray:
        """MFCC windows (n, window_frames, n_mfcc) -> the float model input, same shape."""
        return normalise_windows(windows, self.feature_mean, self.feature_std, self.relative_c0)


def normalise_windows(
    windows: np.ndarray, mean: Sequence[float], std: Sequence[float], relative_c0: bool
) -> np.ndarray:
    """Standardise each coefficient; optionally make c0 (overall level) relative to the window's mean.

    Shared by training and the device so the model always sees the same input.
    """
    x = (np.asarray(windows, np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    if relative_c0:
        x[..., 0] -= x[..., 0].mean(axis=-1, keepdims=True)
    return x


_CORE_KEYS = {
    "format", "format_version", "frontend_version", "frontend", "window_frames", "hop_frames",
    "feature_mean", "feature_std", "relative_c0", "thresholds", "output",
}  # fmt: skip


def metadata_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def load_metadata(model_path: Path) -> ModelMetadata:
    path = metadata_path(model_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VoicegenderError(f"model metadata {path}: not found (it belongs beside the model)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VoicegenderError(f"model metadata {path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise VoicegenderError(f"model metadata {path}: expected a JSON object")
    return ModelMetadata.from_dict(data, source=f"model metadata {path}")


def interpreter_class() -> tuple[type, str]:
    """The first TFLite interpreter available: ai-edge-litert, tflite-runtime, then tensorflow.lite."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf  # last resort on a desktop; never needed on a Pi

        return tf.lite.Interpreter, "tensorflow.lite"
    except ImportError:
        raise VoicegenderError(
            "no TFLite interpreter: install ai-edge-litert (x86_64/aarch64) or tflite-runtime (armv7)"
        ) from None


class Model:
    """An int8 TFLite classifier: MFCC windows in, log-odds of "female" out."""

    def __init__(self, path: Path | str, num_threads: int = 1) -> None:
        self.path = Path(path)
        self.metadata = load_metadata(self.path)
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            raise VoicegenderError(f"model {self.path}: file not found") from None
        except OSError as exc:
            raise VoicegenderError(f"model {self.path}: unreadable ({exc.strerror or exc})") from None
        cls, self.runtime = interpreter_class()
        try:
            self._interp = cls(model_content=content, num_threads=num_threads)
            self._interp.allocate_tensors()
        except Exception as exc:  # the runtimes raise ValueError/RuntimeError for corrupt files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise VoicegenderError(f"model {self.path}: not a valid TFLite model ({first})") from None
        inp = self._interp.get_input_details()
        out = self._interp.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise VoicegenderError(f"model {self.path}: expected one input and one output tensor")
        self._in, self._out = inp[0], out[0]
        m = self.metadata
        expected = (1, m.window_frames, m.frontend.n_mfcc, 1)
        if tuple(self._in["shape"]) != expected:
            raise VoicegenderError(
                f"model {self.path}: input shape {tuple(self._in['shape'])} does not match its metadata "
                f"{expected} (window_frames, n_mfcc)"
            )
        if int(np.prod(self._out["shape"])) != 1:
            raise VoicegenderError(f"model {self.path}: expected a single output value per window")
        self._in_scale, self._in_zero = self._quant(self._in)
        self._out_scale, self._out_zero = self._quant(self._out)

    @staticmethod
    def _quant(detail: dict[str, Any]) -> tuple[float, int]:
        scale, zero = detail.get("quantization", (0.0, 0))
        return float(scale), int(zero)

    def _quantise(self, x: np.ndarray) -> np.ndarray:
        dtype = self._in["dtype"]
        if self._in_scale == 0.0:  # float model
            return x.astype(dtype)
        info = np.iinfo(dtype)
        q = np.round(x / self._in_scale) + self._in_zero
        return np.clip(q, info.min, info.max).astype(dtype)

    def logits(self, mfcc_windows: np.ndarray) -> np.ndarray:
        """Log-odds of "female" for MFCC windows of shape (n, window_frames, n_mfcc)."""
        m = self.metadata
        windows = np.asarray(mfcc_windows, dtype=np.float32)
        if windows.ndim == 2:
            windows = windows[None]
        if windows.shape[1:] != (m.window_frames, m.frontend.n_mfcc):
            raise VoicegenderError(
                f"model {self.path}: windows must be (n, {m.window_frames}, {m.frontend.n_mfcc}), "
                f"got {windows.shape}"
            )
        x = self._quantise(m.normalise(windows))
        out = np.empty(len(x), dtype=np.float32)
        for i, window in enumerate(x):
            self._interp.set_tensor(self._in["index"], window[None, :, :, None])
            self._interp.invoke()
            y = self._interp.get_tensor(self._out["index"]).reshape(-1)[0]
            out[i] = (float(y) - self._out_zero) * self._out_scale if self._out_scale else float(y)
        return out


def load_model(path: Path | str | None = None, num_threads: int = 1) -> Model:
    """Load a model and its metadata (default: the shipped model)."""
    return Model(path or DEFAULT_MODEL, num_threads=num_threads)


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def sliding_windows(frames: np.ndarray, window_frames: int, hop_frames: int) -> np.ndarray:
    """All full windows of ``window_frames`` frames every ``hop_frames``, as (n, window_frames, n_feat)."""
    n = 0 if len(frames) < window_frames else 1 + (len(frames) - window_frames) // hop_frames
    if n == 0:
        return np.zeros((0, window_frames, frames.shape[1]), dtype=np.float32)
    idx = np.arange(window_frames)[None, :] + hop_frames * np.arange(n)[:, None]
    return frames[idx]

"""Load the int8 TFLite model and its metadata; turn MFCC windows into log-odds of "female".

The metadata JSON beside the model carries the front-end settings it was trained with, the model
file's size and sha256, and a sha256 of the settings that define the model's input. A model whose
file or input settings changed after export, whose front-end version is unknown here, or whose
input tensor does not fit its settings is refused with one clear error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import VoicegenderError
from .frontend import FRONTEND_VERSION, FrontendSettings
from .stderrfilter import drop_stderr_lines

METADATA_FORMAT = "voicegender-model"
METADATA_VERSION = 1
DEFAULT_MODEL = Path(str(resources.files("voicegender.models") / "voicegender.tflite"))
"""The shipped model: ``models/`` is installed as the package ``voicegender.models``."""
INTEGRITY_KEYS = ("model_bytes", "model_sha256", "settings_sha256")
"""Metadata keys that tie the JSON to its .tflite and to the input settings it was exported with."""
INPUT_SETTINGS_KEYS = (
    "frontend_version", "frontend", "window_frames", "feature_mean", "feature_std", "relative_c0", "output",
)  # fmt: skip
"""What the model's input means: ``settings_sha256`` covers these. Thresholds and hop_frames are
operating choices (the config overrides them) and may be edited."""

log = logging.getLogger("voicegender.model")


def _sha256(data: bytes) -> Any:
    """A SHA-256 hash object from CPython's built-in implementation where there is one.

    ``hashlib`` loads OpenSSL (libcrypto), about 3.5 MB of the daemon's resident memory, for a
    digest of one 40 KB file; the built-in module gives the same digest.
    """
    try:
        from _sha2 import sha256  # Python 3.12+
    except ImportError:
        try:
            from _sha256 import sha256  # Python 3.11
        except ImportError:  # a Python built without them
            from hashlib import sha256
    return sha256(data)


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

    @staticmethod
    def check_format(data: dict[str, Any], source: str = "model metadata") -> None:
        """Refuse a JSON object that is not voicegender model metadata of a version this code reads."""
        if data.get("format") != METADATA_FORMAT or data.get("format_version") != METADATA_VERSION:
            if "format" not in data or "format_version" not in data:
                missing = "format" if "format" not in data else "format_version"
                raise VoicegenderError(f"{source}: missing key '{missing}'")
            raise VoicegenderError(
                f"{source}: not {METADATA_FORMAT} version {METADATA_VERSION} metadata "
                f"(format={data.get('format')!r}, format_version={data.get('format_version')!r})"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model metadata") -> ModelMetadata:
        def need(key: str) -> Any:
            if key not in data:
                raise VoicegenderError(f"{source}: missing key '{key}'")
            return data[key]

        cls.check_format(data, source)
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


def _canonical(value: Any) -> Any:
    """JSON values with every number as a float, so 8000 and 8000.0 hash alike."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def settings_sha256(data: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the metadata's input settings (``INPUT_SETTINGS_KEYS``)."""
    subset = {k: _canonical(data[k]) for k in INPUT_SETTINGS_KEYS if k in data}
    text = json.dumps(subset, sort_keys=True, separators=(",", ":"))
    return _sha256(text.encode("utf-8")).hexdigest()


def seal(data: dict[str, Any], tflite: bytes) -> dict[str, Any]:
    """``data`` (metadata as a dict) plus the size and sha256 of ``tflite`` and its settings' sha256."""
    return {
        **data,
        "model_bytes": len(tflite),
        "model_sha256": _sha256(tflite).hexdigest(),
        "settings_sha256": settings_sha256(data),
    }


def verify_integrity(data: dict[str, Any], tflite: bytes, model_path: Path) -> list[str]:
    """Refuse a .tflite or input settings that differ from what was exported; return the missing keys.

    Metadata from an older export has none of ``INTEGRITY_KEYS``. Such a model is loaded with a
    warning rather than refused: a device that worked must keep working after a software update
    (refusing would stop the service until the model is retrained and re-exported), and the
    tensor-shape and front-end version checks still apply to it.
    """
    path = metadata_path(model_path)
    changed = "the .tflite or the .json was changed after export, or they belong to different models"

    def mismatch(what: str) -> VoicegenderError:
        return VoicegenderError(
            f"model {model_path}: does not match its metadata {path.name} ({what}); {changed}"
        )

    missing = [k for k in INTEGRITY_KEYS if k not in data]
    if "model_bytes" in data and data["model_bytes"] != len(tflite):
        raise mismatch(f"{len(tflite)} bytes, the metadata says {data['model_bytes']!r:.40}")
    if "model_sha256" in data:
        digest = _sha256(tflite).hexdigest()
        if data["model_sha256"] != digest:
            raise mismatch(f"sha256 {digest[:16]}..., the metadata says {str(data['model_sha256'])[:16]}...")
    if "settings_sha256" in data and data["settings_sha256"] != settings_sha256(data):
        raise mismatch("settings_sha256: its front-end, window or normalisation settings were edited")
    return missing


def _read_metadata(model_path: Path) -> tuple[dict[str, Any], str]:
    path = metadata_path(model_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VoicegenderError(f"model metadata {path}: not found (it belongs beside the model)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VoicegenderError(f"model metadata {path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise VoicegenderError(f"model metadata {path}: expected a JSON object")
    return data, f"model metadata {path}"


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
        # Checks in the order that gives the most useful message: the file named, then its
        # metadata, then whether the two belong together, then whether they fit this device.
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            raise VoicegenderError(f"model {self.path}: file not found") from None
        except OSError as exc:
            raise VoicegenderError(f"model {self.path}: unreadable ({exc.strerror or exc})") from None
        data, source = _read_metadata(self.path)
        ModelMetadata.check_format(data, source)
        # Integrity keys missing from the metadata (an older export): then nothing ties the two files.
        self.unverified = tuple(verify_integrity(data, content, self.path))
        self.metadata = ModelMetadata.from_dict(data, source=source)
        cls, self.runtime = interpreter_class()
        try:
            with drop_stderr_lines():  # the runtime's "INFO: Created ... XNNPACK delegate" line
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
        shape = tuple(int(v) for v in self._in["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 1:
            raise VoicegenderError(f"model {self.path}: input shape {shape} is not (1, frames, features, 1)")
        if shape[1:3] != (m.window_frames, m.frontend.n_mfcc):
            raise VoicegenderError(
                f"model {self.path}: input shape {shape} does not match its metadata: "
                f"{shape[1]} frames x {shape[2]} features, the metadata says window_frames="
                f"{m.window_frames}, n_mfcc={m.frontend.n_mfcc}"
            )
        if int(np.prod(self._out["shape"])) != 1:
            raise VoicegenderError(f"model {self.path}: expected a single output value per window")
        self._in_scale, self._in_zero = self._quant(self._in)
        self._out_scale, self._out_zero = self._quant(self._out)
        if self.unverified:
            log.warning(
                "model %s: unverified: its metadata has no %s (exported by an older voicegender-train); "
                "re-export the model to add them",
                self.path,
                "/".join(self.unverified),
            )

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

"""A digest of the code that produces cached results, so a changed recipe never reuses a stale cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
FEATURE_CODE = ("augment.py", "features.py", "windows.py")
"""Modules whose code decides the training windows."""
MODEL_CODE = (*FEATURE_CODE, "train.py", "cnn.py", "weights.py")
"""Modules whose code decides the trained network."""


def code_digest(modules: tuple[str, ...]) -> str:
    """sha256 over the source text of these modules of the training package."""
    h = hashlib.sha256()
    for name in modules:
        h.update(name.encode() + b"\0" + (_HERE / name).read_bytes() + b"\0")
    return h.hexdigest()


def array_digest(*arrays: np.ndarray) -> str:
    """sha256 over the dtype, shape and bytes of these arrays (no copy of a contiguous array)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()

"""A digest of the code that produces cached results, so a changed recipe never reuses a stale cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

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

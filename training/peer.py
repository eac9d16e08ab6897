"""The peer: inaSpeechSegmenter 0.6.8 (MIT; a 6 MB Keras gender CNN) on the same clips as our model.

It needs its own TensorFlow 2.15 / numpy 1.23 (it still uses ``numpy.int``), so it runs in a venv of
its own (``.venv-ina`` by default, made on first use from PyPI) through ``ina_worker.py``, one
process for all clips. A clip's label is the gender with more speech time in ina's segmentation; a
clip where it finds no male or female speech (or as much of each) is undecided, which our three-way
figures count as "uncertain". Results are cached per file (path, size, content hash), since a full
run over the evaluation sets takes CPU-minutes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import sidecar
from .sidecar import SidecarError, ask_cached, file_key, python_between

INA_VERSION = "0.6.8"
INA_REQUIREMENTS = (
    "tensorflow-cpu==2.15.1",
    "keras==2.15.0",
    "numpy==1.23.5",
    "pandas<2.2",
    "scikit-image<0.23",
    "scipy<1.12",
    "soundfile",
    "pytextgrid",
    "pyannote.core",
    "pyannote.algorithms",
)
"""ina's dependencies as they work together (its own metadata pins nothing); the package itself is
installed with --no-deps, since it asks for an unpinned tensorflow."""
WORKER = Path(__file__).with_name("ina_worker.py")


PeerError = SidecarError
"""The peer could not be installed or run (one line, for the CLI)."""


@dataclass(frozen=True)
class PeerResult:
    """inaSpeechSegmenter's verdict on one clip."""

    female_seconds: float
    """Seconds ina segmented as female speech."""
    male_seconds: float
    """Seconds ina segmented as male speech."""
    cpu_seconds: float
    """Process CPU time ina spent on the clip (all its threads)."""
    error: str | None = None
    """Why ina could not process the clip, if it could not."""

    @property
    def label(self) -> str:
        """ "female" / "male" by more speech time; "undecided" without (or with equal) gendered speech."""
        if self.female_seconds > self.male_seconds:
            return "female"
        if self.male_seconds > self.female_seconds:
            return "male"
        return "undecided"


def ensure_venv(venv: Path) -> Path:
    """The venv's python, creating and filling the venv first if needed (idempotent, quick when done)."""
    if shutil.which("ffmpeg") is None:
        raise PeerError("inaSpeechSegmenter: needs ffmpeg on PATH to decode audio (apt-get install ffmpeg)")

    def base() -> str:  # TensorFlow 2.15 has wheels for Python 3.9-3.11 only
        return python_between("inaSpeechSegmenter", [(3, 11), (3, 10), (3, 9)])

    installs = [INA_REQUIREMENTS, ("--no-deps", f"inaSpeechSegmenter=={INA_VERSION}")]
    return sidecar.ensure_venv(venv, "inaSpeechSegmenter", f"ina-{INA_VERSION}", base, installs, "~600 MB")


def run_ina(paths: Iterable[Path], venv: Path, cache: Path | None = None) -> dict[Path, PeerResult]:
    """ina's result for every clip in ``paths`` (from ``cache`` where it has them; new ones added)."""
    paths = list(dict.fromkeys(Path(p) for p in paths))
    keys = {p: file_key(p) for p in paths}  # each file read and hashed once
    found = ask_cached(
        "inaSpeechSegmenter",
        lambda: ensure_venv(venv),
        WORKER,
        {k: {"path": str(p.resolve())} for p, k in keys.items()},
        cache,
        {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"},
    )
    return {p: PeerResult(**found[k]) for p, k in keys.items()}

"""Where the project's folders are: the checkout (models, cache, the peer's venv) and the shared data."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The project checkout."""
SHARED_DATA = REPO.parent / "shared" / "data"
"""The shared corpora (read-only)."""

"""Shared test fixtures: where the data and the fixture recordings are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
DATA_DIR = Path(os.environ.get("VOICEGENDER_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The read-only shared data folder (../shared/data beside the checkout)."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data not found at {DATA_DIR} (set VOICEGENDER_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(autouse=True)
def state_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test, and every process it starts, keeps its default decision log in a temp dir:
    $XDG_STATE_HOME points there and systemd's $STATE_DIRECTORY is unset, so nothing lands in
    ~/.local/state or /var/lib/voicegender."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    return state


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def mock_pins(monkeypatch):
    """A fresh gpiozero mock pin factory (with PWM pins) as the default, what `--gpio mock` selects."""
    gpiozero = pytest.importorskip("gpiozero")
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setenv("GPIOZERO_MOCK_PIN_CLASS", "mockpwmpin")
    previous = gpiozero.Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    gpiozero.Device.pin_factory = factory
    yield factory
    factory.reset()
    gpiozero.Device.pin_factory = previous

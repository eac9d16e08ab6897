"""LED output against gpiozero's mock pins: what each pin does for each state and decision."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

import gpiozero
import pytest

from voicegender.errors import VoicegenderError
from voicegender.events import Decision, State
from voicegender.leds import Leds, LedSettings
from voicegender.model import Thresholds

MALE, FEMALE, STATUS = 17, 27, 22


@pytest.fixture
def factory(mock_pins):
    """A fresh mock pin factory as gpiozero's default, whatever other tests did before."""
    return mock_pins


def decision(label: str, p: float, final: bool = True) -> Decision:
    return Decision(label=label, p_female=p, speech_seconds=1.0, start=0.0, end=1.0, windows=4, final=final)


def level(factory, pin: int) -> float:
    return float(factory.pin(pin).state)


def changes(factory, pin: int) -> int:
    """How many times the pin changed state since the first state was recorded."""
    return len(factory.pin(pin).states) - 1


def test_male_then_female_lights_one_led(factory):
    leds = Leds(LedSettings())
    leds.on_decision(decision("male", 0.1))
    assert (level(factory, MALE), level(factory, FEMALE)) == (1.0, 0.0)
    leds.on_decision(decision("female", 0.9))
    assert (level(factory, MALE), level(factory, FEMALE)) == (0.0, 1.0)
    leds.on_decision(decision("no_speech", 0.5))
    assert (level(factory, MALE), level(factory, FEMALE)) == (0.0, 0.0)
    leds.close()


def test_active_low_inverts_pins(factory):
    leds = Leds(LedSettings(active_high=False))
    leds.on_decision(decision("female", 0.9))
    assert (level(factory, MALE), level(factory, FEMALE)) == (1.0, 0.0)
    leds.close()


def test_uncertain_blinks_both_leds_together(factory):
    leds = Leds(LedSettings(decision_hold_seconds=0))
    leds.on_decision(decision("uncertain", 0.5))
    time.sleep(1.3)  # 0.5 s on / 0.5 s off: on, off, on
    male, female = factory.pin(MALE).states, factory.pin(FEMALE).states
    leds.on_decision(decision("male", 0.1))  # the blink stops for good
    factory.pin(FEMALE).clear_states()
    time.sleep(0.6)
    assert (level(factory, MALE), level(factory, FEMALE), changes(factory, FEMALE)) == (1.0, 0.0, 0)
    leds.close()
    assert len(male) - 1 >= 3
    # in step: the same sequence of levels, switching within a few ms of each other
    assert [s for _, s in male[:4]] == [s for _, s in female[:4]]
    t_male = [sum(t for t, _ in male[: i + 1]) for i in range(4)]
    t_female = [sum(t for t, _ in female[: i + 1]) for i in range(4)]
    assert max(abs(a - b) for a, b in zip(t_male, t_female, strict=True)) < 0.05


def test_error_blinks_faster_than_listening(factory):
    leds = Leds(LedSettings())
    leds.on_state(State.LISTENING)
    time.sleep(0.6)
    listening = changes(factory, STATUS)
    leds.on_state(State.ERROR)
    factory.pin(STATUS).clear_states()
    time.sleep(0.6)
    error = changes(factory, STATUS)
    leds.close()
    assert listening == 2  # heartbeat: one short flash (on, off), next one only after 2 s
    assert error >= 4  # 0.1 s on / 0.1 s off


def test_speech_is_steady_and_starting_is_lamp_test(factory):
    leds = Leds(LedSettings())
    leds.on_state(State.STARTING)
    assert [level(factory, p) for p in (MALE, FEMALE, STATUS)] == [1.0, 1.0, 1.0]
    leds.on_state(State.LISTENING)
    assert (level(factory, MALE), level(factory, FEMALE)) == (0.0, 0.0)
    leds.on_state(State.SPEECH)
    factory.pin(STATUS).clear_states()
    time.sleep(0.3)
    assert level(factory, STATUS) == 1.0 and changes(factory, STATUS) == 0
    leds.on_state(State.STOPPED)
    assert [level(factory, p) for p in (MALE, FEMALE, STATUS)] == [0.0, 0.0, 0.0]
    leds.close()


def test_error_clears_decision(factory):
    leds = Leds(LedSettings())
    leds.on_decision(decision("female", 0.9))
    leds.on_state(State.ERROR)
    assert level(factory, FEMALE) == 0.0
    leds.close()


def test_hold_expiry_returns_to_listening(factory):
    leds = Leds(LedSettings(decision_hold_seconds=0.2))
    leds.on_state(State.SPEECH)
    leds.on_decision(decision("male", 0.05, final=False))
    time.sleep(0.3)
    assert level(factory, MALE) == 1.0  # provisional decisions are not timed out during speech
    leds.on_decision(decision("male", 0.05))
    leds.on_state(State.LISTENING)
    time.sleep(0.1)
    assert level(factory, MALE) == 1.0
    time.sleep(0.25)
    assert level(factory, MALE) == 0.0
    leds.close()


def test_provisional_decision_expires_when_speech_ends_without_final(factory):
    leds = Leds(LedSettings(decision_hold_seconds=0.2))
    leds.on_state(State.SPEECH)
    leds.on_decision(decision("female", 0.95, final=False))
    leds.on_state(State.LISTENING)  # input lost mid-utterance: no final decision follows
    time.sleep(0.1)
    assert level(factory, FEMALE) == 1.0
    time.sleep(0.25)
    assert level(factory, FEMALE) == 0.0
    leds.close()


def test_new_decision_restarts_hold(factory):
    leds = Leds(LedSettings(decision_hold_seconds=0.3))
    leds.on_decision(decision("male", 0.05))
    time.sleep(0.2)
    leds.on_decision(decision("female", 0.95))
    time.sleep(0.2)  # the male decision's timer would have fired by now
    assert level(factory, FEMALE) == 1.0
    time.sleep(0.25)
    assert level(factory, FEMALE) == 0.0
    leds.close()


def test_pwm_brightness_follows_confidence(factory):
    floor = 0.2
    leds = Leds(LedSettings(pwm=True, pwm_min_brightness=floor), Thresholds(0.35, 0.65))
    female = []
    for p in (0.65, 0.7, 0.8, 0.9, 1.0):
        leds.on_decision(decision("female", p))
        female.append(level(factory, FEMALE))
    male = []
    for p in (0.35, 0.3, 0.2, 0.1, 0.0):
        leds.on_decision(decision("male", p))
        male.append(level(factory, MALE))
    leds.close()
    for values in (female, male):
        assert values[0] == pytest.approx(floor)
        assert values[-1] == pytest.approx(1.0)
        assert all(a < b for a, b in itertools.pairwise(values))


def test_close_turns_everything_off(factory):
    leds = Leds(LedSettings())
    leds.on_state(State.STARTING)
    leds.close()
    assert [level(factory, p) for p in (MALE, FEMALE, STATUS)] == [0.0, 0.0, 0.0]
    leds.close()  # twice is harmless
    leds.on_decision(decision("male", 0.1))  # after close: ignored, no error


def test_explicit_mock_factory_needs_no_environment(monkeypatch):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.delenv("GPIOZERO_MOCK_PIN_CLASS", raising=False)
    leds = Leds(LedSettings(pin_factory="mock", pwm=True))
    pin = leds._factory.pin(FEMALE)
    leds.on_decision(decision("female", 1.0))
    assert pin.state == 1.0
    leds.close()
    assert pin.state == 0.0


def test_disabled_touches_no_gpio(factory):
    leds = Leds(LedSettings(enabled=False))
    leds.on_state(State.STARTING)
    leds.on_decision(decision("male", 0.1))
    leds.close()
    assert not factory.pins


def test_pins_in_use_give_one_line_error(factory):
    first = Leds(LedSettings())
    with pytest.raises(VoicegenderError, match=r"male=17 female=27 status=22.*holds the pin.*--gpio mock"):
        Leds(LedSettings())
    first.close()
    Leds(LedSettings()).close()  # released on close: a reload can take the pins again


def test_permission_denied_names_pins_and_factory(factory, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/dev/gpiochip0")

    monkeypatch.setattr(gpiozero, "LEDBoard", denied)
    with pytest.raises(
        VoicegenderError, match=r"status=22 with pin factory 'mock'.*/dev/gpiochip0.*gpio group"
    ):
        Leds(LedSettings())


def test_unknown_factory_lists_the_known_ones(factory):
    with pytest.raises(VoicegenderError, match=r"pin_factory 'nosuch'.*lgpio"):
        Leds(LedSettings(pin_factory="nosuch"))


def test_bad_settings_rejected():
    with pytest.raises(VoicegenderError, match="three different"):
        LedSettings(male_pin=17, female_pin=17)
    with pytest.raises(VoicegenderError, match="decision_hold_seconds"):
        LedSettings(decision_hold_seconds=-1)


def test_import_does_not_import_gpiozero():
    code = "import sys, voicegender.leds; sys.exit('gpiozero' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

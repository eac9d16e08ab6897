"""Three LEDs on GPIO show the daemon's state and its latest decision.

What a person sees (BCM pins from ``[leds]``):

- starting: all three LEDs on steady (a lamp test: a dead LED or a wiring fault shows at once).
- listening: the status LED flashes briefly (0.1 s) every 2 s, a heartbeat.
- speech: the status LED is on steady while a voice is heard.
- error: the status LED blinks fast (5 times a second); male and female LEDs are off.
- stopped: everything off.
- male / female: that LED on, the other off. With ``pwm`` the brightness shows confidence: how far
  p_female is past the decision threshold, never dimmer than ``pwm_min_brightness``.
- uncertain: male and female LEDs blink together slowly (0.5 s on, 0.5 s off).
- no_speech: male and female off.

Provisional decisions show while the person is still speaking; a final decision stays shown for
``decision_hold_seconds`` and then the male/female LEDs go dark (the status LED keeps showing the
state). If speech ends without a final decision, the provisional one is held the same way.
gpiozero's own background threads do the blinking and a ``threading.Timer`` ends the hold, so no
call here blocks the audio loop.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from .errors import VoicegenderError
from .events import Decision, State
from .model import Thresholds

log = logging.getLogger(__name__)

HEARTBEAT = (0.1, 1.9)
"""Listening: status LED (on, off) seconds."""
FAST_BLINK = (0.1, 0.1)
"""Error: status LED (on, off) seconds."""
SLOW_BLINK = (0.5, 0.5)
"""Uncertain: male and female LEDs (on, off) seconds, in step."""

NO_LEDS_HINT = "use --gpio mock to run without LEDs, or set [leds] enabled = false"


def _gpio_hint(exc: BaseException, text: str) -> str:
    """What to do about a GPIO failure, by its cause."""
    if isinstance(exc, PermissionError) or "ermission denied" in text or "can not open gpiochip" in text:
        return (
            f"add the user to the gpio group (sudo usermod -aG gpio $USER; log in again), or {NO_LEDS_HINT}"
        )
    if "in use" in text:
        return f"another program (or another voicegender) holds the pin; stop it, or {NO_LEDS_HINT}"
    if "Pi revision" in text:
        return f"this does not look like a Raspberry Pi; {NO_LEDS_HINT}"
    if isinstance(exc, ImportError) or "No module named" in text:
        return f"install lgpio (apt install python3-lgpio, or pip install lgpio), or {NO_LEDS_HINT}"
    return NO_LEDS_HINT


@dataclass(frozen=True)
class LedSettings:
    """GPIO LEDs ([leds] in the config)."""

    enabled: bool = True
    """False: no GPIO access at all (the LED output does nothing)."""
    male_pin: int = 17
    """BCM number of the male LED."""
    female_pin: int = 27
    """BCM number of the female LED."""
    status_pin: int = 22
    """BCM number of the status LED (heartbeat / speech / error)."""
    active_high: bool = True
    """True when a high pin lights the LED (LED from pin to ground via a resistor)."""
    pwm: bool = False
    """Dim the male/female LED by confidence (needs a PWM-capable pin factory, e.g. lgpio)."""
    pwm_min_brightness: float = 0.15
    """Brightness (0-1) of a decision just past its threshold, so it is still visible."""
    decision_hold_seconds: float = 3.0
    """How long a final decision stays shown; 0 keeps it until the next decision."""
    pin_factory: str = ""
    """gpiozero pin factory (lgpio, rpigpio, pigpio, native, mock); empty = gpiozero's default."""

    def __post_init__(self) -> None:
        pins = (self.male_pin, self.female_pin, self.status_pin)
        if len(set(pins)) != 3 or not all(0 <= p <= 27 for p in pins):
            raise VoicegenderError(
                f"[leds] male_pin, female_pin and status_pin must be three different BCM numbers "
                f"0-27, got {pins}"
            )
        if not 0.0 <= self.pwm_min_brightness <= 1.0:
            raise VoicegenderError(
                f"[leds] pwm_min_brightness must be in [0, 1], got {self.pwm_min_brightness}"
            )
        if self.decision_hold_seconds < 0:
            raise VoicegenderError(
                f"[leds] decision_hold_seconds must be >= 0, got {self.decision_hold_seconds}"
            )


def brightness(decision: Decision, thresholds: Thresholds, floor: float) -> float:
    """How brightly to show a male/female decision: ``floor`` at the threshold, 1 at certainty."""
    p = decision.p_female
    if decision.label == "female":
        margin = (p - thresholds.female_above) / (1.0 - thresholds.female_above)
    else:
        margin = (thresholds.male_below - p) / thresholds.male_below
    return floor + (1.0 - floor) * min(max(margin, 0.0), 1.0)


def _make_factory(name: str) -> Any:
    """A gpiozero pin factory by name (None for gpiozero's default, which Device owns)."""
    if not name:
        return None
    if name == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        return MockFactory(pin_class=MockPWMPin)  # MockPWMPin also serves on/off LEDs
    from importlib.metadata import entry_points

    known = {ep.name: ep for ep in entry_points(group="gpiozero_pin_factories")}
    if name not in known:
        raise VoicegenderError(f"[leds] pin_factory {name!r} is unknown; choose one of {sorted(known)}")
    return known[name].load()()


class Leds:
    """The LED output (implements ``events.Output``); does nothing when ``settings.enabled`` is False."""

    def __init__(self, settings: LedSettings, thresholds: Thresholds | None = None) -> None:
        self.settings = settings
        self.thresholds = thresholds or Thresholds()
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self._generation = 0  # bumps on every display change, so a stale hold timer does nothing
        self._state: State | None = None
        self._showing = False  # male/female LEDs show a decision
        self._shown: tuple[str, float] | None = None  # (label, brightness) they show
        self._pair: Any = None
        self._status: Any = None
        self._factory: Any = None
        if settings.enabled:
            self._open()

    def _open(self) -> None:
        s = self.settings
        try:
            from gpiozero import LED, LEDBoard
        except ImportError as exc:
            raise VoicegenderError(
                f"LEDs need gpiozero ({exc}); install it with pip install 'voicegender[device]', "
                "or set [leds] enabled = false"
            ) from exc
        factory_name = s.pin_factory or os.environ.get("GPIOZERO_PIN_FACTORY", "") or "default"
        # gpiozero warns once per factory it falls back from; those reasons are the useful part
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self._factory = _make_factory(s.pin_factory)
                kw = {"active_high": s.active_high, "pin_factory": self._factory}
                self._pair = LEDBoard(
                    male=s.male_pin, female=s.female_pin, pwm=s.pwm, _order=("male", "female"), **kw
                )
                self._status = LED(s.status_pin, **kw)
                error = None
            except VoicegenderError:
                self.close()
                raise
            except Exception as exc:  # gpiozero raises many types (BadPinFactory, PermissionError, ...)
                self.close()
                error = exc
        notes = [str(w.message) for w in caught]
        if error is None:
            for note in notes:
                log.warning("LEDs: %s", note)  # e.g. fell back to a factory without PWM
            return
        text = "; ".join([*notes, f"{type(error).__name__}: {error}"])
        raise VoicegenderError(
            f"LEDs: cannot drive GPIO pins male={s.male_pin} female={s.female_pin} status={s.status_pin} "
            f"with pin factory {factory_name!r}: {text}; {_gpio_hint(error, text)}"
        ) from error

    def on_state(self, state: State, detail: str = "") -> None:
        if self._status is None:
            return
        with self._lock:
            if state == self._state:
                return  # restarting a blink would reset its phase for nothing
            if self._state is State.STARTING:
                self._clear_decision()  # end the lamp test
            self._state = state
            if state is State.STARTING:
                self._clear_decision()
                self._pair.on()
                self._status.on()
            elif state is State.LISTENING:
                self._status.blink(*HEARTBEAT)
                if self._showing and self._timer is None:
                    self._start_hold()  # speech ended without a final decision (e.g. input lost)
            elif state is State.SPEECH:
                self._status.on()
            elif state is State.ERROR:
                self._clear_decision()
                self._status.blink(*FAST_BLINK)
            else:  # STOPPED
                self._clear_decision()
                self._status.off()

    def on_decision(self, decision: Decision) -> None:
        if self._pair is None:
            return
        with self._lock:
            shown = (decision.label, self._level(decision))
            if self._showing and shown == self._shown:
                # The same display again (e.g. the final after the provisional decision at the end of
                # speech): keep the LEDs as they are, so they do not flicker; only the hold restarts.
                self._cancel_hold()
            else:
                self._clear_decision()
                if decision.label in ("male", "female"):
                    led = self._pair.male if decision.label == "male" else self._pair.female
                    led.value = shown[1]
                elif decision.label == "uncertain":
                    self._pair.blink(*SLOW_BLINK)
                self._showing = decision.label in ("male", "female", "uncertain")
                self._shown = shown
            if self._showing and decision.final:
                self._start_hold()

    def _level(self, decision: Decision) -> float:
        """Brightness of the decision's LED: full, or with PWM scaled by the decision's confidence."""
        if self.settings.pwm and decision.label in ("male", "female"):
            return brightness(decision, self.thresholds, self.settings.pwm_min_brightness)
        return 1.0

    def _start_hold(self) -> None:
        """Clear the shown decision after the hold time (caller holds the lock)."""
        if self.settings.decision_hold_seconds > 0:
            self._timer = threading.Timer(
                self.settings.decision_hold_seconds, self._expire, args=(self._generation,)
            )
            self._timer.daemon = True
            self._timer.start()

    def _expire(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation and self._pair is not None:
                self._clear_decision()

    def _cancel_hold(self) -> None:
        """Cancel any hold timer (caller holds the lock)."""
        self._generation += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _clear_decision(self) -> None:
        """Male and female off, any hold timer cancelled (caller holds the lock)."""
        self._cancel_hold()
        self._showing = False
        self._pair.off()  # stops a board blink (joining its thread), then turns each LED off

    def close(self) -> None:
        with self._lock:
            if self._pair is not None:
                self._clear_decision()
            for device in (self._status, self._pair):
                if device is not None:
                    device.off()
                    device.close()
            self._status = self._pair = None
            if self._factory is not None:
                self._factory.close()
                self._factory = None

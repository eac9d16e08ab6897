"""The daemon's main loop: read audio, classify, tell the outputs; survive a missing microphone.

One thread does everything that matters (reading, processing, pinging the systemd watchdog), so a
hung loop stops the pings and systemd restarts the service. Signals only set flags the loop polls:
SIGTERM/SIGINT stop it within one read timeout (0.2 s), SIGHUP reloads the config file. A
microphone that is absent at start or disappears is retried with exponential backoff (1, 2, 4 ...
``retry_max_seconds``) while the outputs show the error; the process never exits for it.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from .config import Config, load_config
from .errors import VoicegenderError
from .events import Decision, Output, State
from .model import Thresholds
from .outputs import MultiOutput
from .pipeline import StreamProcessor
from .sources import AudioSource, SourceEnded, SourceLost

log = logging.getLogger("voicegender.daemon")

READ_TIMEOUT = 0.2
"""Longest a read may block: bounds the reaction time to signals and the watchdog interval."""
RELOADABLE = ("decision", "leds", "decision_log", "logging", "api", "mqtt")
"""Config sections a SIGHUP applies; the others need a restart."""


@dataclass(frozen=True)
class OutputSlot:
    """An output the config decides, rebuilt on reload when its ``key`` changes."""

    name: str
    """Name used in log messages ("leds", "decision_log")."""
    build: Callable[[Config, Thresholds], Output]
    """Makes the output for a config and the thresholds in force."""
    key: Callable[[Config, Thresholds], object]
    """What the output depends on; a reload rebuilds the output only when this changes."""


class Daemon:
    """Runs one input until it ends (file, stdin) or a stop signal (microphone: forever).

    ``make_source(config)`` builds the (unopened) source; ``slots`` build the outputs the config
    decides (LEDs, decision log), rebuilt on reload when their settings change; ``fixed_outputs``
    (journal, notifier, stdout) live for the whole run. ``reload_config()`` returns the new Config
    on SIGHUP (re-reading the file and applying the command-line overrides again). With
    ``retry_first_open=False`` (interactive commands) a microphone that cannot be opened at start
    raises its error instead of being retried; one lost later is still retried.
    """

    def __init__(
        self,
        config: Config,
        model: Any,
        make_source: Callable[[Config], AudioSource],
        slots: list[OutputSlot] | None = None,
        fixed_outputs: list[Output] | None = None,
        notifier: Any = None,
        reload_config: Callable[[], Config] | None = None,
        on_chunk: Callable[[StreamProcessor], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry_first_open: bool = True,
    ) -> None:
        self.config = config
        self.retry_first_open = retry_first_open
        self.model = model
        self.make_source = make_source
        self.slots = list(slots or [])
        self.notifier = notifier
        self.reload_config = reload_config
        self.on_chunk = on_chunk
        self._sleep = sleep
        self._clock = clock
        self.thresholds = config.decision.thresholds(model.metadata.thresholds)
        self.fixed = list(fixed_outputs or [])
        self.built: dict[str, Output] = {}
        try:
            for slot in self.slots:
                self.built[slot.name] = slot.build(config, self.thresholds)
        except BaseException:
            for output in self.built.values():
                output.close()
            raise
        self.outputs = MultiOutput([*self.fixed, *self.built.values()])
        self.processor: StreamProcessor | None = None
        self.source: AudioSource | None = None
        self.state: State | None = None
        self.stop_requested = False
        self.reload_requested = False
        self.decisions = 0
        self._overflows_logged = 0
        self._retry_delay = 1.0
        self._sent_ready = False
        self._lost_at: float | None = None

    # -- signals ------------------------------------------------------------------------------------

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        self.stop_requested = True

    def request_reload(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        self.reload_requested = True

    def install_signal_handlers(self) -> dict[int, Any]:
        """Route SIGTERM/SIGINT/SIGHUP to the flags; returns the previous handlers."""
        previous = {}
        for sig, handler in ((signal.SIGTERM, self.request_stop), (signal.SIGINT, self.request_stop),
                             (signal.SIGHUP, self.request_reload)):  # fmt: skip
            previous[sig] = signal.signal(sig, handler)
        return previous

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until the input ends or a stop is requested; returns the exit status (0)."""
        previous = self.install_signal_handlers()
        try:
            self._set_state(State.STARTING, "loading")
            self._loop()
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _loop(self) -> None:
        while not self.stop_requested:
            self._ping()
            if self.reload_requested:
                self.reload_requested = False
                self.reload()
            if self.source is None and not self._open_source():
                self._backoff()
                continue
            assert self.source is not None and self.processor is not None
            try:
                chunk = self.source.read(READ_TIMEOUT)
            except SourceEnded:
                self._emit(self.processor.flush())
                log.info("input %s ended after %.2f s", self.source.name, self.processor.position)
                return
            except SourceLost as exc:
                self._lost(str(exc))
                continue
            self._check_overflows()
            if chunk is None:
                continue
            self._emit(self.processor.push(chunk))
            if self.on_chunk is not None:
                self.on_chunk(self.processor)

    def _open_source(self) -> bool:
        """Open the input; False (after reporting) if a microphone is missing. Other inputs raise."""
        source = self.make_source(self.config)
        try:
            source.open()
        except VoicegenderError as exc:
            source.close()
            if not self.config.audio.is_microphone or (self.processor is None and not self.retry_first_open):
                raise
            self._error(f"{exc}; retrying in {self._retry_delay:g} s")
            return False
        origin = self.processor.position if self.processor is not None else 0.0
        if self.processor is not None and self._lost_at is not None:
            origin += self._clock() - self._lost_at  # the time the input was away
        self.source = source
        self.processor = StreamProcessor(
            self.model, self.config.vad, self.config.decision, source.sample_rate, self.thresholds, origin
        )
        self._overflows_logged = source.overflows
        self._retry_delay = 1.0
        self._lost_at = None
        self._set_state(State.LISTENING, f"input {source.name} ({source.sample_rate} Hz)")
        if not self._sent_ready and self.notifier is not None:
            self.notifier.ready(f"listening on {source.name}")
        self._sent_ready = True
        return True

    def _lost(self, why: str) -> None:
        assert self.processor is not None
        self._emit(self.processor.abandon())
        if self.source is not None:
            self.source.close()
        self.source = None
        self._lost_at = self._clock()
        if not self.config.audio.is_microphone:
            raise VoicegenderError(why)
        self._error(f"{why}; retrying in {self._retry_delay:g} s")
        self._backoff()

    def _error(self, message: str) -> None:
        self._set_state(State.ERROR, message)
        if not self._sent_ready and self.notifier is not None:
            # systemd waits for READY before it calls the unit started; without it, a missing
            # microphone at boot would turn into a start timeout and a restart loop.
            self.notifier.ready(f"error: {message}")
            self._sent_ready = True

    def _backoff(self) -> None:
        """Wait before the next attempt, still answering signals and pinging the watchdog."""
        deadline = self._clock() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, self.config.audio.retry_max_seconds)
        while not self.stop_requested and self._clock() < deadline:
            self._ping()
            if self.reload_requested:
                self.reload_requested = False
                self.reload()
            self._sleep(min(0.1, max(0.0, deadline - self._clock())))

    def _emit(self, events: list[State | Decision]) -> None:
        for event in events:
            if isinstance(event, Decision):
                if event.final:
                    self.decisions += 1
                self.outputs.on_decision(event)
            else:
                self._set_state(event)

    def _set_state(self, state: State, detail: str = "") -> None:
        self.state = state
        self.outputs.on_state(state, detail)

    def _ping(self) -> None:
        if self.notifier is not None:
            self.notifier.watchdog()

    def _check_overflows(self) -> None:
        assert self.source is not None
        count = self.source.overflows
        if count > self._overflows_logged:
            log.warning(
                "input %s: %d audio chunk(s) lost to overflow (%d in total); is the CPU overloaded?",
                self.source.name,
                count - self._overflows_logged,
                count,
            )
            self._overflows_logged = count

    # -- reload and shutdown ------------------------------------------------------------------------

    def reload(self) -> None:
        """Apply a re-read config: thresholds, decision settings, LEDs, decision log, MQTT, logging."""
        if self.reload_config is None:
            return
        if self.notifier is not None:
            self.notifier.reloading()
        try:
            new = self.reload_config()
            thresholds = new.decision.thresholds(self.model.metadata.thresholds)
        except VoicegenderError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            self._ready_again()
            return
        old = self.config
        for name in (f.name for f in dataclasses.fields(Config)):
            if name not in RELOADABLE and getattr(new, name) != getattr(old, name):
                log.warning("reload: [%s] changed; that takes effect at the next restart", name)
        changed = self._rebuild_outputs(new, thresholds)
        if self.processor is not None:
            self.processor.configure(new.decision, thresholds)
        from .journal import setup_logging

        if new.logging != old.logging:
            setup_logging(new.logging.level)
            for output in self.fixed:
                if hasattr(output, "verbose"):
                    output.verbose = new.logging.verbose
        keep = {name: getattr(old, name) for name in ("model", "audio", "vad")}
        self.config = dataclasses.replace(new, **keep)
        self.thresholds = thresholds
        log.info("configuration reloaded%s", f" (rebuilt {', '.join(changed)})" if changed else "")
        self._ready_again()

    def _rebuild_outputs(self, new: Config, thresholds: Thresholds) -> list[str]:
        """Rebuild the outputs whose settings changed; if a new one fails, rebuild the old one."""
        changed = []
        for slot in self.slots:
            if slot.key(new, thresholds) == slot.key(self.config, self.thresholds):
                continue
            changed.append(slot.name)
            try:
                self.built[slot.name].close()  # first: new LEDs need the same GPIO pins
            except Exception:
                log.exception("reload: closing the old %s output failed", slot.name)
            try:
                output = slot.build(new, thresholds)
            except VoicegenderError as exc:
                log.error("reload: new %s output failed (%s); keeping the old settings", slot.name, exc)
                try:
                    output = slot.build(self.config, self.thresholds)
                except VoicegenderError as again:
                    log.error(
                        "reload: the old %s output failed too (%s); running without it", slot.name, again
                    )
                    output = NullOutput()
            if self.state is not None:
                output.on_state(self.state, "")
            self.built[slot.name] = output
        self.outputs = MultiOutput([*self.fixed, *self.built.values()])
        return changed

    def _ready_again(self) -> None:
        if self.notifier is not None:
            self.notifier.ready()

    def _shutdown(self) -> None:
        if self.notifier is not None:
            self.notifier.stopping()
        if self.source is not None:
            self.source.close()
            self.source = None
        self._set_state(State.STOPPED, "")
        self.outputs.close()
        for handler in logging.getLogger("voicegender").handlers:
            handler.flush()


class NullOutput:
    """An output that shows nothing (stands in for one that could not be set up)."""

    def on_state(self, state: State, detail: str = "") -> None:
        pass

    def on_decision(self, decision: Decision) -> None:
        pass

    def close(self) -> None:
        pass


def config_reloader(path: Path | None, overrides: Callable[[Config], Config]) -> Callable[[], Config]:
    """A ``reload_config`` for ``Daemon``: re-read ``path`` and re-apply the command-line overrides."""

    def reload() -> Config:
        return overrides(load_config(path))

    return reload

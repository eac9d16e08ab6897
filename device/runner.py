"""Builds a ``Daemon`` from a config: the audio source, the model and the outputs.

Kept apart from the CLI so tests (and other front ends) can make the same daemon with fakes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import AudioSettings, Config
from .daemon import Daemon, NullOutput, OutputSlot, config_reloader
from .decisionlog import DecisionLog
from .errors import VoicegenderError
from .events import Output
from .journal import JournalOutput
from .leds import Leds
from .model import DEFAULT_MODEL, Model, load_model
from .mqtt import MqttOutput
from .notify import Notifier
from .outputs import StdoutJsonOutput
from .sources import AudioSource, FileSource, MicSource, StdinSource

GPIO_MODES = ("auto", "mock", "off")


def use_gpio_mode(mode: str, pwm: bool) -> None:
    """``mock``: make gpiozero's default pin factory a mock one. Must run before gpiozero is imported."""
    if mode not in GPIO_MODES:
        raise VoicegenderError(f"--gpio {mode!r}: choose one of {', '.join(GPIO_MODES)}")
    if mode == "mock":
        os.environ["GPIOZERO_PIN_FACTORY"] = "mock"
        if pwm:
            os.environ["GPIOZERO_MOCK_PIN_CLASS"] = "mockpwmpin"


FAST_CHUNK_SECONDS = 1.0
"""Chunk length for file input processed as fast as possible."""


def make_source(audio: AudioSettings) -> AudioSource:
    """The (unopened) source for ``[audio] input``: "mic", "-" (raw s16le on stdin) or an audio file."""
    if audio.input == "-":
        # Unbuffered: a reader thread blocked in sys.stdin.buffer holds its lock, and the interpreter
        # aborts at exit ("could not acquire lock ... at interpreter shutdown"); a raw read does not.
        stdin = open(0, "rb", buffering=0, closefd=False)  # noqa: SIM115  # lives as long as the source
        return StdinSource(
            audio.sample_rate or 16000, audio.chunk_seconds, stream=stdin, queue_chunks=audio.queue_chunks
        )
    if audio.is_microphone:
        return MicSource(
            audio.device_spec,
            audio.sample_rate or None,
            audio.chunk_seconds,
            audio.queue_chunks,
            stall_seconds=audio.stall_seconds,
        )
    # Unpaced (--fast), nothing waits for a chunk, so read big ones: per-chunk overhead then stops
    # mattering, and the decisions are the same for any chunk size.
    chunk = audio.chunk_seconds if audio.realtime else max(audio.chunk_seconds, FAST_CHUNK_SECONDS)
    return FileSource(Path(audio.input), realtime=audio.realtime, chunk_seconds=chunk)


def model_path(config: Config) -> Path:
    return Path(config.model.path) if config.model.path else DEFAULT_MODEL


def open_model(config: Config) -> Model:
    return load_model(model_path(config), num_threads=config.model.num_threads)


def _api_output(config: Config, thresholds: Any) -> Output:
    """The HTTP API and web page with the daemon's events ([api] enabled), else nothing (nothing imported)."""
    if not config.api.enabled:
        return NullOutput()
    from .api.server import ApiOutput

    return ApiOutput(config, thresholds)


def _api_key(config: Config, thresholds: Any) -> object:
    if not config.api.enabled:
        return config.api
    return (config.api, config.decision, config.leds.decision_hold_seconds, thresholds)


API_SLOT = OutputSlot("api", _api_output, _api_key)
"""The API: rebuilt (its clients reconnect) when [api] or, while it runs, what it classifies with changes."""


MQTT_SETTLE_SECONDS = 5.0
"""WAV input: how long the start waits for the first MQTT connection attempt's outcome, so that a
file processed faster than real time still publishes each state change (a microphone or stdin never
waits: their states are coalesced until the broker is there, their decisions queued)."""


def _mqtt_output(config: Config, note: Callable[[str, str], None] | None) -> MqttOutput:
    settle = 0.0 if config.audio.input in ("mic", "-") else MQTT_SETTLE_SECONDS
    return MqttOutput(config.mqtt, note, settle_seconds=settle)


def output_slots(notifier: Notifier | None = None) -> list[OutputSlot]:
    """The outputs the config decides; a reload rebuilds one when its settings change.

    The MQTT link's health and drop count go to ``notifier``'s STATUS= line.
    """
    note = notifier.set_note if notifier is not None else None
    return [
        OutputSlot("leds", lambda c, t: Leds(c.leds, t), lambda c, t: (c.leds, t)),
        OutputSlot("decision_log", lambda c, t: DecisionLog(c.decision_log), lambda c, t: c.decision_log),
        OutputSlot("mqtt", lambda c, t: _mqtt_output(c, note), lambda c, t: c.mqtt),
        API_SLOT,
    ]


OUTPUT_SLOTS = output_slots()
"""The slots without a notifier (tests build daemons from these)."""


def build_daemon(
    config: Config,
    model: Any,
    *,
    json_stdout: bool = False,
    provisional: bool = False,
    reload_config: Callable[[], Config] | None = None,
    extra_outputs: list[Output] | None = None,
    on_chunk: Callable[[Any], None] | None = None,
    notifier: Notifier | None = None,
    journal: bool = True,
    retry_first_open: bool = True,
) -> Daemon:
    """The daemon for ``config``: journal/stderr log, systemd notifier, LEDs, decision log (+ stdout JSON).

    ``journal=False`` leaves decisions and states out of the log (a terminal shows them instead);
    ``retry_first_open=False`` makes a microphone that cannot be opened at start an error.
    """
    notifier = notifier or Notifier()
    fixed: list[Output] = [JournalOutput(verbose=config.logging.verbose)] if journal else []
    fixed.append(notifier)
    if json_stdout:
        fixed.append(StdoutJsonOutput(provisional=provisional))
    fixed += extra_outputs or []

    def chunk_hook(processor: Any) -> None:
        if on_chunk is not None:
            on_chunk(processor)
        api = daemon.built.get("api")
        levels = getattr(api, "on_chunk", None)  # the API's level meter, when it is on
        if levels is not None:
            levels(processor)

    daemon = Daemon(
        config,
        model,
        make_source=lambda c: make_source(c.audio),
        slots=output_slots(notifier),
        fixed_outputs=fixed,
        notifier=notifier,
        reload_config=reload_config,
        on_chunk=chunk_hook,
        retry_first_open=retry_first_open,
    )
    return daemon


__all__ = ["GPIO_MODES", "build_daemon", "config_reloader", "make_source", "open_model", "use_gpio_mode"]

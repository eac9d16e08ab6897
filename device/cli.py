"""The ``voicegender`` command: classify files, run the daemon, listen, list devices, check the setup.

Every ``VoicegenderError`` becomes ``voicegender: error: <message>`` on stderr and exit status 2
(``classify`` reports a bad file the same way, carries on with the others and exits 1).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import VoicegenderError

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
CONFIG_HELP = "config file (default /etc/voicegender/config.toml if present)"
FORMATS = "WAV, FLAC, Ogg Vorbis/Opus, MP3 (and anything ffmpeg reads, if installed)"
DEFAULT_LOG = (
    "decisions.jsonl in $XDG_STATE_HOME/voicegender or ~/.local/state/voicegender; "
    "under systemd in the unit's StateDirectory, /var/lib/voicegender"
)


def _error(message: object) -> None:
    print(f"voicegender: error: {message}", file=sys.stderr, flush=True)


# -- classify -------------------------------------------------------------------------------------------


def classify_json(name: str, d: Any) -> str:
    """The line ``classify --json`` prints for a decision (also the answer of POST /api/v1/classify)."""
    p = None if math.isnan(d.p_female) else round(d.p_female, 4)
    record = {"path": name, "label": d.label, "p_female": p}
    record.update(speech_seconds=round(d.speech_seconds, 3), start=round(d.start, 3), end=round(d.end, 3))
    return json.dumps({**record, "windows": d.windows})


def cmd_classify(args: argparse.Namespace) -> int:
    from .audiofile import read_audio
    from .config import load_config, with_overrides
    from .pipeline import classify_audio
    from .runner import open_model

    config = load_config(args.config)  # the daemon's config: same [vad], [decision], [model]
    config = with_overrides(config, {"model": {"path": args.model} if args.model else {}})
    model = open_model(config)
    failed = 0
    for path in args.files:
        try:
            audio = read_audio(path)
            for warning in audio.warnings:
                print(f"voicegender: warning: {warning}", file=sys.stderr, flush=True)
            d = classify_audio(audio.samples, audio.sample_rate, model, config.vad, config.decision)
        except VoicegenderError as exc:
            _error(exc)
            failed += 1
            if args.json:  # one line per input, so a batch's output still lines up with its inputs
                print(json.dumps({"path": str(path), "error": str(exc)}), flush=True)
            continue
        p = None if math.isnan(d.p_female) else round(d.p_female, 4)
        if args.json:
            print(classify_json(str(path), d), flush=True)
        else:
            if p is None and d.label == "uncertain":
                how = f"too little speech to decide: {d.speech_seconds:.1f} s"
            else:
                how = f"p_female {'-' if p is None else f'{p:.2f}'}, {d.speech_seconds:.1f} s of speech"
            print(f"{path}: {d.label} ({how})", flush=True)
    return EXIT_FAILED if failed else EXIT_OK


# -- run / listen ---------------------------------------------------------------------------------------


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    audio: dict[str, Any] = {}
    if args.input is not None:
        audio["input"] = args.input
    if args.device is not None:
        audio["device"] = str(args.device)
    if args.input_rate is not None:
        audio["sample_rate"] = args.input_rate
    if args.fast:
        audio["realtime"] = False
    leds: dict[str, Any] = {}
    if args.gpio == "off":
        leds["enabled"] = False
    elif args.gpio == "mock":
        leds["pin_factory"] = ""  # gpiozero's default factory, which GPIOZERO_PIN_FACTORY makes a mock
    log: dict[str, Any] = {}
    if args.decision_log == "off":
        log["enabled"] = False
    elif args.decision_log is not None:
        log.update(enabled=True, path=args.decision_log)
    logging_: dict[str, Any] = {"level": args.log_level} if args.log_level else {}
    if args.verbose:
        logging_["verbose"] = True
    return {
        "model": {"path": args.model} if args.model else {},
        "audio": audio,
        "leds": leds,
        "decision_log": log,
        "logging": logging_,
    }


def cmd_run(args: argparse.Namespace, listen: bool = False) -> int:
    from .config import load_config, with_overrides
    from .daemon import config_reloader
    from .journal import setup_logging
    from .runner import build_daemon, make_source, open_model, use_gpio_mode

    overrides = _overrides(args)
    log_asked = bool(args.log_level or args.verbose)
    if listen:
        # The terminal shows states and decisions; the log adds only warnings unless asked for more.
        # Both logging keys are pinned so that a reload never swaps the terminal's log handler.
        level = args.log_level or ("debug" if args.verbose else "warning")
        overrides["logging"] = {"level": level, "verbose": args.verbose}

    def apply(config: Any) -> Any:
        return with_overrides(config, overrides)

    config = apply(load_config(args.config))
    if config.audio.input not in ("mic", "-"):
        make_source(config.audio).close()  # a missing or unreadable file: fail before starting up
    use_gpio_mode(args.gpio, config.leds.pwm)
    terminal = None
    if listen:
        from .terminal import TerminalOutput

        terminal = TerminalOutput(silence_db=config.vad.min_level_db)
    setup_logging(config.logging.level, handler=terminal.log_handler() if terminal else None)
    model = open_model(config)
    daemon = build_daemon(
        config,
        model,
        json_stdout=args.json,
        provisional=args.provisional,
        reload_config=config_reloader(args.config, apply),
        extra_outputs=[terminal] if terminal else None,
        on_chunk=terminal,
        journal=not listen or log_asked,
        # A person at a terminal wants the error, not endless retries; the service keeps trying.
        retry_first_open=not listen,
    )
    return daemon.run()


# -- serve ----------------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .api.server import ApiServer
    from .config import load_config, with_overrides
    from .journal import setup_logging
    from .runner import open_model

    api: dict[str, Any] = {}
    if args.bind is not None:
        api["bind"] = args.bind
    if args.port is not None:
        api["port"] = args.port
    if args.token_file is not None:
        api["token_file"] = str(args.token_file)
    if args.tls_cert is not None:
        api.update(tls_cert_file=str(args.tls_cert), tls_key_file=str(args.tls_key or ""))
    elif args.tls_key is not None:
        api["tls_key_file"] = str(args.tls_key)
    model = {"path": args.model} if args.model else {}
    config = with_overrides(load_config(args.config), {"model": model, "api": api})
    setup_logging(config.logging.level)
    server = ApiServer(config, open_model(config))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        print(f"voicegender: serving the API and the web page on {server.url}/", flush=True)
        while not stop.wait(0.5):
            if not server.running:
                raise VoicegenderError(f"the API server on {server.url} stopped unexpectedly")
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


# -- devices / doctor / config --------------------------------------------------------------------------


def cmd_devices(args: argparse.Namespace) -> int:
    from .sources import list_input_devices

    devices = list_input_devices()
    if args.json:
        for d in devices:
            print(json.dumps(d))
        return EXIT_OK
    if not devices:
        print("no audio input devices found")
        return EXIT_OK
    print(f"{'index':>5}  {'rate':>6}  {'ch':>2}  name")
    for d in devices:
        mark = "  (default)" if d["is_default"] else ""
        print(f"{d['index']:>5}  {d['default_samplerate']:>6.0f}  {d['channels']:>2}  {d['name']}{mark}")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_checks

    verdicts = run_checks(args.config, model=args.model)
    for v in verdicts:
        print(v.line(), flush=True)
    return EXIT_OK if all(v.ok for v in verdicts) else EXIT_FAILED


def cmd_config(args: argparse.Namespace) -> int:
    from .config import Config, load_config, render_toml

    config = Config() if args.defaults else load_config(args.config)
    if args.effective:
        config = _in_effect(config)
        print("# In effect here: the model file, its thresholds and the decision log file resolved.")
    print(render_toml(config), end="")
    return EXIT_OK


def _in_effect(config: Any) -> Any:
    """``config`` with what its 0 and empty values stand for here (loads the model to read them)."""
    import dataclasses

    from .runner import model_path, open_model

    thresholds = config.decision.thresholds(open_model(config).metadata.thresholds)
    log = config.decision_log
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, path=str(model_path(config))),
        decision=dataclasses.replace(
            config.decision, male_below=thresholds.male_below, female_above=thresholds.female_above
        ),
        decision_log=dataclasses.replace(log, path=str(log.resolve())) if log.enabled else log,
    )


# -- argument parsing -----------------------------------------------------------------------------------


def _add_run_options(p: argparse.ArgumentParser, gpio_default: str, log_default: str | None) -> None:
    p.add_argument("--config", type=Path, help=CONFIG_HELP)
    p.add_argument(
        "--input",
        help=f'"mic" (default), an audio file ({FORMATS}), or "-" for raw s16le mono PCM on stdin',
    )
    p.add_argument("--input-rate", type=int, metavar="HZ", help="sample rate of --input - (default 16000)")
    p.add_argument("--device", help="microphone: part of its name or its index (see `voicegender devices`)")
    p.add_argument("--fast", action="store_true", help="read an input file as fast as possible")
    p.add_argument("--model", help="TFLite model file (its .json beside it); default: the shipped model")
    p.add_argument(
        "--gpio",
        choices=("auto", "mock", "off"),
        default=gpio_default,
        help=f"LEDs: auto = real GPIO, mock = simulated pins, off = no LEDs (default {gpio_default})",
    )
    p.add_argument("--json", action="store_true", help="print each final decision as a JSON line on stdout")
    p.add_argument("--provisional", action="store_true", help="with --json, also print provisional decisions")
    p.add_argument(
        "--decision-log",
        metavar="PATH|off",
        default=log_default,
        help="write final decisions as JSON lines to PATH, or off (default: "
        + (log_default or f"[decision_log] in the config, else {DEFAULT_LOG}")
        + ")",
    )
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="overrides [logging]")
    p.add_argument(
        "--verbose", action="store_true", help="also log speech start/end and provisional decisions"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicegender",
        description="On-device voice gender classifier: LEDs show male / female / uncertain.",
    )
    parser.add_argument("--version", action="version", version=f"voicegender {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "classify",
        help="one decision per audio file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"""\
Classify each audio file as a whole: one decision per file on stdout, as text or
(--json) one JSON object per line. A file that cannot be read is reported on stderr
and the others are still classified; the exit status is then 1.

Accepted formats:
  {FORMATS}.
Any sample rate and channel count; audio is mixed to mono and resampled to 16 kHz.""",
        epilog="""\
examples:
  voicegender classify talk.wav
  voicegender classify --json recordings/*.flac > decisions.jsonl
  voicegender classify --config /etc/voicegender/config.toml voicemail.ogg""",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--model", help="TFLite model file (default: the shipped model)")
    p.add_argument(
        "--config",
        type=Path,
        help="take [vad], [decision] and [model] from this config file "
        "(default /etc/voicegender/config.toml if present, as the daemon)",
    )

    p = sub.add_parser(
        "run",
        help="the daemon (what the systemd service runs)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Classify speech from the input continuously; show it on the LEDs, log each final
decision to the journal (stderr outside systemd) and the decision log. A microphone
that is missing or lost is retried with backoff; a file or stdin input ends the run.""",
        epilog="""\
examples:
  voicegender run --input talk.wav --gpio mock --json     # on a laptop, paced in real time
  voicegender run --input talk.flac --fast --gpio off --decision-log off --json
  arecord -f S16_LE -r 16000 -c 1 -t raw | voicegender run --input - --gpio mock --json""",
    )
    _add_run_options(p, gpio_default="auto", log_default=None)

    p = sub.add_parser(
        "listen",
        help="run in the foreground with a live level meter",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Like run, for a person at a terminal: a live input level meter, each final decision
printed once above it, no LEDs and no decision log unless asked for. Only warnings
and errors are logged unless --log-level or --verbose asks for more. A microphone
that cannot be opened is an error (run retries it).""",
        epilog="""\
examples:
  voicegender listen
  voicegender listen --device USB              # see `voicegender devices`
  voicegender listen --input talk.wav --gpio mock""",
    )
    _add_run_options(p, gpio_default="off", log_default="off")

    p = sub.add_parser(
        "serve",
        help="the HTTP API and web page, without a microphone (classify and stream)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Serve the HTTP API and the web page from this computer: POST /api/v1/classify (an
audio file in, the line `classify --json` prints out), the /api/v1/stream WebSocket
(PCM in, events out) and the page at /, which can use the browser's microphone.
Loopback only unless a token file is given; see [api] in the config.""",
        epilog="""\
examples:
  voicegender serve                                    # http://127.0.0.1:8750/
  curl --data-binary @talk.wav -H 'Content-Type: audio/wav' http://127.0.0.1:8750/api/v1/classify
  voicegender serve --bind 0.0.0.0 --token-file ~/.voicegender-token --tls-cert cert.pem --tls-key key.pem""",
    )
    p.add_argument("--config", type=Path, help=CONFIG_HELP)
    p.add_argument("--bind", metavar="ADDRESS", help="address to listen on (default [api] bind, 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default [api] port, 8750; 0 = any free port)")
    p.add_argument("--token-file", type=Path, metavar="PATH", help="file holding the bearer token")
    p.add_argument("--tls-cert", type=Path, metavar="PEM", help="certificate for HTTPS (with --tls-key)")
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="private key of --tls-cert")
    p.add_argument("--model", help="TFLite model file (its .json beside it); default: the shipped model")

    p = sub.add_parser(
        "devices",
        help="list audio input devices and their native sample rates",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
List the audio input devices PortAudio finds: index, native sample rate, channels
and name; the default input is marked. Choose one for run/listen with --device
(part of its name or its index) or [audio] device in the config.""",
        epilog="""\
examples:
  voicegender devices
  voicegender devices --json
  voicegender listen --device 2""",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per device")

    p = sub.add_parser(
        "doctor",
        help="check model, microphone, GPIO, config, permissions and MQTT",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Check what the daemon needs, one line each, OK or FAIL with what to do: the config
file parses, the model loads and fits the front end, the microphone records (2 s),
the GPIO chips are usable for the LEDs, the decision log is writable, and with [mqtt]
on, the broker takes the login (and the installed service may reach it and reports no
trouble; its dropped decisions are shown). Exit status 0 when every check passes, else 1.""",
        epilog="""\
examples:
  voicegender doctor
  voicegender doctor --config /etc/voicegender/config.toml
  voicegender doctor --model my-model.tflite""",
    )
    p.add_argument("--config", type=Path, help=CONFIG_HELP)
    p.add_argument("--model", help="check this model file instead of the configured one")

    p = sub.add_parser(
        "config",
        help="print the configuration as TOML",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Print the configuration as TOML, every key with its documentation: the config file's
values, with the defaults for keys it leaves out. 0 and empty values stand for a
default worked out at run time (the shipped model, the model's own thresholds, the
decision log in the state directory); --effective shows what they are here.""",
        epilog="""\
examples:
  voicegender config --defaults > config.toml          # a documented starting point
  voicegender config --effective
  voicegender config --config /etc/voicegender/config.toml --effective""",
    )
    p.add_argument("--config", type=Path, help=CONFIG_HELP)
    p.add_argument("--defaults", action="store_true", help="print the documented defaults instead")
    p.add_argument(
        "--effective",
        action="store_true",
        help="resolve 0 and empty values: model path, thresholds, decision log file (loads the model)",
    )
    return parser


COMMANDS = {
    "classify": cmd_classify,
    "run": cmd_run,
    "listen": lambda a: cmd_run(a, listen=True),
    "serve": cmd_serve,
    "devices": cmd_devices,
    "doctor": cmd_doctor,
    "config": cmd_config,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except VoicegenderError as exc:
        _error(exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `voicegender classify *.wav | head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

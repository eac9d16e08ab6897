"""The `voicegender` command: classify, run, listen, devices, doctor, config; one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import gpiozero
import numpy as np
import pytest
from daemon_fakes import FakeModel, ScriptedSource
from test_terminal import screen

import voicegender.config
import voicegender.runner
from voicegender import __version__
from voicegender.cli import main
from voicegender.config import Config, with_overrides
from voicegender.daemon import Daemon
from voicegender.doctor import check_gpio, check_permissions
from voicegender.model import DEFAULT_MODEL, Thresholds
from voicegender.wavio import write_wav

REPO = Path(__file__).resolve().parents[1]
SHIPPED_MODEL = REPO / "models" / "voicegender.tflite"
SR = 16000


@pytest.fixture
def fake_model(monkeypatch) -> None:
    """The CLI loads FakeModel instead of a TFLite file (the shipped model may not exist yet)."""
    monkeypatch.setattr(voicegender.runner, "open_model", lambda config: FakeModel())


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("voicegender: error: ") and "Traceback" not in err
    return lines[0][len("voicegender: error: ") :]


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"voicegender {__version__}"


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("voicegender")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for command in ("classify", "run", "listen", "devices", "doctor"):
        assert command in result.stdout


# -- classify --------------------------------------------------------------------------------------------


def test_classify_good_and_bad_files(tmp_path, fixtures_dir, fake_model, capsys) -> None:
    silent = tmp_path / "silent.wav"
    write_wav(silent, np.zeros(2 * SR, dtype=np.float32), SR)
    not_wav = tmp_path / "notes.wav"
    not_wav.write_text("this is not audio")
    files = [
        fixtures_dir / "male_1320.wav",
        not_wav,
        tmp_path / "absent.wav",
        fixtures_dir / "female_3575.wav",
        silent,
    ]
    assert main(["classify", "--json", *map(str, files)]) == 1
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in records] == list(map(str, files))  # one line per input, in order
    assert [r.get("label") for r in records] == ["male", None, None, "female", "no_speech"]
    decided = [records[i] for i in (0, 3, 4)]
    assert decided[0]["p_female"] < 0.35 < 0.65 < decided[1]["p_female"] and decided[2]["p_female"] is None
    assert 3.5 < decided[0]["speech_seconds"] <= 5.0 and decided[2]["speech_seconds"] == 0.0
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("voicegender: error: ") for e in errors)
    assert "notes.wav" in errors[0] and "absent.wav" in errors[1]
    # The failed inputs' records carry the same one-line message and nothing else.
    assert [set(records[i]) for i in (1, 2)] == [{"path", "error"}] * 2
    assert [records[i]["error"] for i in (1, 2)] == [e.removeprefix("voicegender: error: ") for e in errors]


def test_classify_text_output(fixtures_dir, fake_model, capsys) -> None:
    assert main(["classify", str(fixtures_dir / "male_1320.wav")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{fixtures_dir / 'male_1320.wav'}: male (p_female 0.")
    assert line.endswith(" s of speech)")


def write_metadata(path: Path, **changes) -> None:
    data = {**FakeModel().metadata.to_dict(), **changes}
    path.with_suffix(".json").write_text(json.dumps(data))


@pytest.mark.parametrize("case", ["missing", "corrupt", "bad metadata", "no metadata"])
def test_bad_model_files(tmp_path, fixtures_dir, capsys, case: str) -> None:
    model = tmp_path / "model.tflite"
    if case != "missing":
        model.write_bytes(b"\x00garbage, not a flatbuffer" * 10)
    if case in ("missing", "corrupt"):
        write_metadata(model)
    if case == "bad metadata":
        write_metadata(model, frontend_version=99)
    rc = main(["classify", "--model", str(model), str(fixtures_dir / "male_1320.wav")])
    message = one_error_line(capsys.readouterr().err)
    assert rc == 2 and "model" in message and str(tmp_path) in message
    expected = {"missing": "file not found", "corrupt": "not a valid TFLite model",
                "bad metadata": "front-end version 99", "no metadata": "not found"}[case]  # fmt: skip
    assert expected in message


def test_model_whose_metadata_does_not_match(tmp_path, fixtures_dir, capsys) -> None:
    if not SHIPPED_MODEL.exists():
        pytest.fail(f"shipped model {SHIPPED_MODEL} is missing (restore models/ from git)")
    model = tmp_path / "model.tflite"
    model.write_bytes(SHIPPED_MODEL.read_bytes())
    data = json.loads(SHIPPED_MODEL.with_suffix(".json").read_text())
    data["window_frames"] = data["window_frames"] + 2
    model.with_suffix(".json").write_text(json.dumps(data))
    assert main(["classify", "--model", str(model), str(fixtures_dir / "male_1320.wav")]) == 2
    assert "does not match its metadata" in one_error_line(capsys.readouterr().err)


# -- config errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[leds]\npinn = 3\n", "unknown key [leds] pinn (allowed: enabled, male_pin"),
        ('[vad]\nsnr_db = "loud"\n', '[vad] snr_db: expected a number, got "loud"'),
        ("[leds]\nmale_pin = 99\n", "[leds]"),
        ("[decision\n", "not valid TOML"),
    ],
)
@pytest.mark.parametrize("command", ["run", "doctor", "config"])
def test_config_errors_are_one_line(tmp_path, capsys, text: str, expected: str, command: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    rc = main([command, "--config", str(path)])
    captured = capsys.readouterr()
    if command == "doctor":  # doctor reports it as a failed check instead
        assert rc == 1 and f"FAIL config: config {path}: " in captured.out and expected in captured.out
        return
    assert rc == 2
    assert one_error_line(captured.err).startswith(f"config {path}: ")
    assert expected in captured.err


def test_missing_explicit_config(tmp_path, capsys) -> None:
    assert main(["run", "--config", str(tmp_path / "absent.toml")]) == 2
    assert one_error_line(capsys.readouterr().err) == f"config {tmp_path / 'absent.toml'}: file not found"


def test_config_defaults_is_the_shipped_file(capsys) -> None:
    assert main(["config", "--defaults"]) == 0
    assert capsys.readouterr().out == (REPO / "firmware_config" / "config.toml").read_text()


# -- run / listen ----------------------------------------------------------------------------------------


def test_run_file_fast_json(fixtures_dir, fake_model, mock_pins, capsys) -> None:
    demo = fixtures_dir / "demo_male_then_female.wav"
    rc = main(["run", "--input", str(demo), "--fast", "--gpio", "mock", "--json", "--decision-log", "off"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    decisions = [json.loads(line) for line in out.splitlines()]
    assert [d["label"] for d in decisions] == ["male", "female"]
    assert all(d["final"] for d in decisions)
    # demo: male 0-5 s, silence 5-6.5 s, female 6.5-11.5 s.
    assert decisions[0]["start"] < 0.5 and decisions[0]["end"] <= 5.1
    assert 6.5 <= decisions[1]["start"] < 7.0 and decisions[1]["end"] <= 11.6
    assert "Traceback" not in err
    # The mock LEDs were used (lamp test, then each decision) and left dark.
    assert len(mock_pins.pin(17).states) > 2 and len(mock_pins.pin(27).states) > 2
    assert mock_pins.pin(17).state == 0 and mock_pins.pin(27).state == 0


def test_run_provisional_json(fixtures_dir, fake_model, capsys) -> None:
    demo = fixtures_dir / "male_1320.wav"
    args = [
        "run",
        "--input",
        str(demo),
        "--fast",
        "--gpio",
        "off",
        "--json",
        "--provisional",
        "--decision-log",
        "off",
    ]
    assert main(args) == 0
    decisions = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(decisions) > 5 and decisions[-1]["final"] and not any(d["final"] for d in decisions[:-1])
    assert [d["windows"] for d in decisions[:-1]] == sorted(d["windows"] for d in decisions[:-1])


def test_run_stdin(fixtures_dir, fake_model, tmp_path) -> None:
    """`--input -` reads raw s16le; `--input-rate` says its rate (here 8 kHz, resampled inside)."""
    from voicegender.resample import resample
    from voicegender.wavio import read_wav

    audio, _ = read_wav(fixtures_dir / "female_3575.wav")
    pcm = (resample(audio, SR, 22050) * 32767).astype("<i2").tobytes()
    script = tmp_path / "run.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(REPO / 'tests')!r})\nfrom daemon_fakes import FakeModel\n"
        "import voicegender.runner\nvoicegender.runner.open_model = lambda config: FakeModel()\n"
        "from voicegender.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    args = [
        "run",
        "--input",
        "-",
        "--input-rate",
        "22050",
        "--gpio",
        "off",
        "--json",
        "--decision-log",
        "off",
    ]
    result = subprocess.run([sys.executable, str(script), *args], input=pcm, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    decisions = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [d["label"] for d in decisions] == ["female"]
    assert 0.0 <= decisions[0]["start"] < 0.5 and decisions[0]["end"] <= 5.1


def test_run_missing_input_file(tmp_path, fake_model, capsys) -> None:
    rc = main(["run", "--input", str(tmp_path / "absent.wav"), "--gpio", "off", "--decision-log", "off"])
    assert rc == 2 and "absent.wav" in one_error_line(capsys.readouterr().err)


def test_run_without_gpio_hardware_says_what_to_do(fixtures_dir, fake_model, capsys, monkeypatch) -> None:
    if list(Path("/dev").glob("gpiochip*")):
        pytest.skip("this machine has GPIO")
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    previous = gpiozero.Device.pin_factory
    gpiozero.Device.pin_factory = None
    try:
        rc = main(["run", "--input", str(fixtures_dir / "male_1320.wav"), "--fast", "--decision-log", "off"])
    finally:
        gpiozero.Device.pin_factory = previous
    message = one_error_line(capsys.readouterr().err)
    assert rc == 2 and message.startswith("LEDs: cannot drive GPIO pins") and "--gpio mock" in message


def test_unwritable_decision_log(fixtures_dir, fake_model, capsys, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    args = ["run", "--input", str(fixtures_dir / "male_1320.wav"), "--fast", "--gpio", "off"]
    assert main([*args, "--decision-log", str(blocker / "decisions.jsonl")]) == 2
    message = one_error_line(capsys.readouterr().err)
    assert (
        message.startswith(f"decision log {blocker / 'decisions.jsonl'}: ")
        and "--decision-log off" in message
    )


def test_run_logs_decisions_in_the_users_state_directory(
    fixtures_dir, fake_model, state_home, capsys
) -> None:
    """Without systemd the default decision log is $XDG_STATE_HOME/voicegender/decisions.jsonl."""
    assert main(["run", "--input", str(fixtures_dir / "male_1320.wav"), "--fast", "--gpio", "off"]) == 0
    log = state_home / "voicegender" / "decisions.jsonl"
    assert [json.loads(line)["label"] for line in log.read_text().splitlines()] == ["male"]
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    assert f"decisions are logged to {log}" in capsys.readouterr().err


def _nobody() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or _nobody() is None,
    reason="needs root, setpriv and a 'nobody' user to run as an unprivileged user",
)
def test_readme_run_command_as_an_unprivileged_user(fixtures_dir) -> None:
    """The README's laptop command, run by a user who may write nowhere but their home."""
    nobody = _nobody()
    assert nobody is not None
    home = Path(tempfile.mkdtemp(prefix="voicegender-home-"))  # tmp_path is root's only
    try:
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        become = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                  # May read everything (the interpreter can sit in root's pyenv), write nothing of root's.
                  "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
                  "env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin"]  # fmt: skip
        probe = subprocess.run([*become, sys.executable, "-c", "pass"], capture_output=True, check=False)
        if probe.returncode != 0:
            pytest.skip(f"setpriv cannot switch user here: {probe.stderr.decode().strip()}")
        exe = str(Path(sys.executable).with_name("voicegender"))
        wav = str(fixtures_dir / "male_1320.wav")
        result = subprocess.run(
            [*become, exe, "run", "--input", wav, "--gpio", "mock", "--json", "--fast"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert [json.loads(line)["label"] for line in result.stdout.splitlines()] == ["male"]
        log = home / ".local" / "state" / "voicegender" / "decisions.jsonl"
        assert [json.loads(line)["label"] for line in log.read_text().splitlines()] == ["male"]
        assert log.stat().st_uid == nobody.pw_uid and stat.S_IMODE(log.parent.stat().st_mode) == 0o700
        assert "Traceback" not in result.stderr
    finally:
        shutil.rmtree(home)


def test_listen_prints_meter_and_decisions(fixtures_dir, fake_model, capsys) -> None:
    assert main(["listen", "--input", str(fixtures_dir / "demo_male_then_female.wav"), "--fast"]) == 0
    out, err = capsys.readouterr()
    assert "\r" in out and " dB " in out  # the refreshing meter line
    shown = screen(out)
    assert shown[0].startswith("listening: input ") and shown[-2:] == ["stopped", ""]
    decisions = [line for line in shown if line.startswith("decision:")]
    assert [d.split()[1] for d in decisions] == ["male", "female"]  # each once
    assert err == ""  # the terminal shows states and decisions; the log adds nothing unless asked


def test_listen_log_records_only_when_asked(fixtures_dir, fake_model, capsys) -> None:
    wav = str(fixtures_dir / "male_1320.wav")
    assert main(["listen", "--input", wav, "--fast", "--log-level", "info"]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[1] for line in screen(out) if line.startswith("decision:")] == ["male"]
    assert "info: decision label=male " in err and f"info: input {wav} ended" in err


def test_listen_without_its_microphone_exits_with_the_error(fake_model, capsys, monkeypatch) -> None:
    source = ScriptedSource([], fail_opens=1)
    monkeypatch.setattr(voicegender.runner, "make_source", lambda audio: source)
    assert main(["listen", "--device", "typo"]) == 2
    out, err = capsys.readouterr()
    assert one_error_line(err) == "microphone 'scripted mic': not found" and out == ""
    assert source.opens == 1  # not retried


def test_interactive_daemon_still_retries_a_microphone_lost_later() -> None:
    silence = [np.zeros(1600, dtype=np.float32)] * 5
    sources = [ScriptedSource([*silence, "lost"]), ScriptedSource([], fail_opens=1), ScriptedSource(silence)]
    waits: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    config = with_overrides(Config(), {"audio": {"input": "mic"}})
    daemon = Daemon(config, FakeModel(), lambda c: sources.pop(0), sleep=sleep, clock=lambda: now[0],
                    retry_first_open=False)  # fmt: skip
    assert daemon.run() == 0 and sources == []
    assert sum(waits) == pytest.approx(1.0 + 2.0)  # backoff after the loss, and after the failed reopen


# -- devices / doctor ------------------------------------------------------------------------------------


def test_devices(monkeypatch, capsys) -> None:
    import voicegender.sources

    devices = [
        {
            "index": 0,
            "name": "USB PnP Sound Device",
            "channels": 1,
            "default_samplerate": 44100.0,
            "is_default": True,
        },
        {"index": 3, "name": "pulse", "channels": 32, "default_samplerate": 48000.0, "is_default": False},
    ]
    monkeypatch.setattr(voicegender.sources, "list_input_devices", lambda: devices)
    assert main(["devices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["0", "44100", "1", "USB", "PnP", "Sound", "Device", "(default)"]
    assert lines[2].split() == ["3", "48000", "32", "pulse"]
    assert main(["devices", "--json"]) == 0
    assert [json.loads(x)["name"] for x in capsys.readouterr().out.splitlines()] == [
        "USB PnP Sound Device",
        "pulse",
    ]


def test_doctor_all_ok(tmp_path, fixtures_dir, fake_model, capsys) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[audio]\ninput = "{fixtures_dir / "male_1320.wav"}"\n[leds]\nenabled = false\n'
        f'[decision_log]\npath = "{tmp_path / "state" / "decisions.jsonl"}"\n'
    )
    assert main(["doctor", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["OK"] * 6
    assert [line.split()[1] for line in lines] == [
        "config:",
        "model:",
        "microphone:",
        "gpio:",
        "permissions:",
        "mqtt:",
    ]
    assert lines[-1].split(None, 2)[2].startswith("disabled")  # MQTT is off by default


def test_doctor_reports_failures(tmp_path, capsys) -> None:
    config = tmp_path / "config.toml"
    (tmp_path / "file").write_text("")
    config.write_text(
        f'[audio]\ninput = "/nonexistent/input.wav"\n[decision_log]\npath = "{tmp_path}/file/d.jsonl"\n'
    )
    assert main(["doctor", "--config", str(config), "--model", str(tmp_path / "absent.tflite")]) == 1
    lines = {line.split()[1].rstrip(":"): line for line in capsys.readouterr().out.splitlines()}
    assert lines["config"].startswith("OK")
    assert lines["model"].startswith("FAIL") and "absent" in lines["model"]
    assert lines["microphone"].startswith("FAIL") and "input.wav: no such file" in lines["microphone"]
    assert lines["permissions"].startswith("FAIL") and "is not a directory" in lines["permissions"]


def test_doctor_gpio_checks(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    config = Config()
    assert not check_gpio(config, chips=lambda: []).ok
    hint = check_gpio(config, chips=lambda: []).detail
    assert "--gpio mock" in hint and "enabled = false" in hint
    chip = tmp_path / "gpiochip0"
    chip.write_text("")
    assert check_gpio(config, chips=lambda: [str(chip)]).ok
    assert check_gpio(with_overrides(config, {"leds": {"enabled": False}}), chips=lambda: []).ok
    log = with_overrides(config, {"decision_log": {"path": str(tmp_path / "new" / "dir" / "d.jsonl")}})
    assert check_permissions(log).ok  # a missing directory is fine when its parent is writable


def test_doctor_checks_the_default_decision_log_place(state_home) -> None:
    verdict = check_permissions(Config())
    assert verdict.ok and str(state_home / "voicegender" / "decisions.jsonl") in verdict.detail


# -- help and config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["classify", "run", "listen", "devices", "doctor", "config"])
def test_help_has_a_description_and_examples(capsys, command: str) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    description = out.split("\n\n")[1]
    assert len(description.split()) >= 25, description
    examples = out.split("\nexamples:\n")[1].splitlines()
    assert sum(f"voicegender {command}" in line for line in examples) >= 2, out
    if command in ("classify", "run", "listen"):
        assert "FLAC, Ogg Vorbis/Opus, MP3" in " ".join(out.split())


def test_config_effective_resolves_defaults(tmp_path, state_home, monkeypatch, capsys) -> None:
    model = FakeModel(Thresholds(male_below=0.3, female_above=0.7))
    monkeypatch.setattr(voicegender.runner, "open_model", lambda config: model)
    path = tmp_path / "config.toml"
    path.write_text("[decision]\nfemale_above = 0.8\n")
    assert main(["config", "--config", str(path)]) == 0
    plain = tomllib.loads(capsys.readouterr().out)
    assert plain["decision"]["male_below"] == 0.0 and plain["model"]["path"] == ""
    assert main(["config", "--config", str(path), "--effective"]) == 0
    shown = tomllib.loads(capsys.readouterr().out)
    assert shown["decision"]["male_below"] == 0.3  # the model's own
    assert shown["decision"]["female_above"] == 0.8  # the file's
    assert shown["model"]["path"] == str(DEFAULT_MODEL)
    assert shown["decision_log"]["path"] == str(state_home / "voicegender" / "decisions.jsonl")
    assert {k: v for k, v in shown.items() if k not in ("model", "decision", "decision_log")} == {
        k: v for k, v in plain.items() if k not in ("model", "decision", "decision_log")
    }


def test_config_effective_with_a_missing_model_is_one_line(tmp_path, capsys) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[model]\npath = "{tmp_path / "absent.tflite"}"\n')
    assert main(["config", "--config", str(path), "--effective"]) == 2
    assert "absent.tflite" in one_error_line(capsys.readouterr().err)


def test_classify_prints_nothing_on_stderr(fixtures_dir) -> None:
    """Not even the TFLite runtime's "INFO: Created TensorFlow Lite XNNPACK delegate" line."""
    exe = Path(sys.executable).with_name("voicegender")
    wav = fixtures_dir / "male_1320.wav"
    result = subprocess.run([str(exe), "classify", str(wav)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith(f"{wav}: male (")
    assert result.stderr == ""


# -- classify and run agree ------------------------------------------------------------------------------


def test_classify_reads_the_daemons_default_config(tmp_path, fixtures_dir, fake_model, capsys, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text("[decision]\nfemale_above = 0.999\n")  # the female fixture is then "uncertain"
    monkeypatch.setattr(voicegender.config, "DEFAULT_CONFIG_PATH", config)
    assert main(["classify", "--json", str(fixtures_dir / "female_3575.wav")]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "uncertain"


def test_classify_and_run_use_the_same_windows(fixtures_dir, fake_model, capsys) -> None:
    for name in ("male_1320.wav", "female_3575.wav"):
        wav = str(fixtures_dir / name)
        assert main(["classify", "--json", wav]) == 0
        classified = json.loads(capsys.readouterr().out)
        args = ["run", "--input", wav, "--fast", "--gpio", "off", "--decision-log", "off", "--json"]
        assert main(args) == 0
        (ran,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        for key in ("label", "p_female", "windows", "speech_seconds", "start", "end"):
            assert classified[key] == ran[key], key

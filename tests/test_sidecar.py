"""A tool's own venv and its JSON-lines worker (the peer's and the teacher's), with a real process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from voicegender_training import sidecar
from voicegender_training.sidecar import SidecarError, Worker

ECHO = """
import json, sys
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req.get("die"):
        sys.exit(1)
    print(json.dumps({"twice": 2 * req["n"]}), flush=True)
"""


def test_worker_answers_each_request(tmp_path: Path) -> None:
    script = tmp_path / "echo.py"
    script.write_text(ECHO)
    with Worker("echo", Path(sys.executable), script) as w:
        assert [w.ask({"n": n})["twice"] for n in (1, 5)] == [2, 10]
        with pytest.raises(SidecarError, match="echo: its worker stopped at"):
            w.ask({"die": True})


def test_a_worker_that_cannot_start_is_one_clear_error(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import no_such_module\n")
    with pytest.raises(SidecarError, match=r"broken: its worker did not start \(run .*broken.py"):
        Worker("broken", Path(sys.executable), script)


def test_a_made_venv_is_not_made_again(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".tool-1-ready").touch()

    def no_python() -> str:
        raise AssertionError("looked for a Python although the venv is ready")

    got = sidecar.ensure_venv(venv, "tool", "tool-1", no_python, [("nothing",)], "1 MB")
    assert got == venv / "bin" / "python"


def test_a_failed_install_step_names_the_tool_and_the_step(tmp_path: Path) -> None:
    installs = [("--no-index", "no-such-package-voicegender==0")]
    with pytest.raises(SidecarError, match=r"^tool: set-up step .*pip install .*failed: "):
        sidecar.ensure_venv(tmp_path / "venv", "tool", "tool-1", lambda: sys.executable, installs, "1 MB")
    assert not (tmp_path / "venv" / ".tool-1-ready").exists()

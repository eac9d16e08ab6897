"""Tools that need Python packages of their own (the peer's TensorFlow 2.15 and numpy 1.23, the
teacher's PyTorch): a venv made on first use, and one worker process in it that answers a JSON line
for each JSON line it is sent. Training code talks to them through this, never imports them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


class SidecarError(RuntimeError):
    """A tool's venv could not be made or its worker could not run (one line, for the CLI)."""


def python_between(tool: str, versions: Sequence[tuple[int, int]]) -> str:
    """A Python interpreter on PATH whose version is one of ``versions`` (for wheels that need it)."""
    wanted = {str(v) for v in versions}
    for name in (*(f"python{a}.{b}" for a, b in versions), "python3"):
        exe = shutil.which(name)
        if exe is None:
            continue
        r = subprocess.run(
            [exe, "-c", "import sys; print(tuple(sys.version_info[:2]))"], capture_output=True, text=True
        )
        if r.returncode == 0 and r.stdout.strip() in wanted:
            return exe
    shown = ", ".join(f"{a}.{b}" for a, b in versions)
    raise SidecarError(f"{tool}: needs Python {shown} (none found on PATH; install one with pyenv or uv)")


def ensure_venv(
    venv: Path,
    tool: str,
    stamp: str,
    base_python: Callable[[], str],
    installs: Sequence[Sequence[str]],
    size: str,
) -> Path:
    """The venv's python, after making it with ``base_python()`` and running each ``pip install``
    argument list in turn (once: a stamp file marks it done, so later calls are quick)."""
    python = venv / "bin" / "python"
    done = venv / f".{stamp}-ready"
    if done.exists():
        return python
    print(f"{tool}: installing into {venv} (once; {size})", file=sys.stderr)
    steps = [[base_python(), "-m", "venv", str(venv)]]
    steps += [[str(python), "-m", "pip", "install", "-q", *args] for args in installs]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SidecarError(f"{tool}: set-up step {' '.join(cmd[:6])} failed: {tail[0]}")
    done.touch()
    return python


def file_key(path: Path) -> str:
    """The file's path and content: a copy of the data made again (new mtimes) still hits a cache."""
    data = path.read_bytes()
    return f"{path.resolve()}|{len(data)}|{hashlib.sha256(data).hexdigest()[:16]}"


def ask_cached(
    tool: str,
    python: Callable[[], Path],
    script: Path,
    requests: dict[str, dict[str, Any]],
    cache: Path | None,
    env: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The worker's answer (without its ``path``) to each request, by key: from ``cache`` (JSON lines
    of ``{"key": ..., **answer}``) where it has the key, else from one worker started with ``python()``
    (so a tool whose answers are all cached is not even set up), appending what it answers."""
    known: dict[str, dict[str, Any]] = {}
    if cache is not None and cache.exists():
        for line in cache.read_text().splitlines():
            rec = json.loads(line)
            known[rec.pop("key")] = rec
    todo = [k for k in requests if k not in known]
    if todo:
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
        with Worker(tool, python(), script, env) as worker, open(cache or os.devnull, "a") as out:
            for i, key in enumerate(todo, 1):
                rec = worker.ask(requests[key])
                rec.pop("path", None)
                known[key] = rec
                out.write(json.dumps({"key": key, **rec}) + "\n")
                if i % 250 == 0:
                    print(f"{tool}: {i}/{len(todo)} files", file=sys.stderr, flush=True)
    return {k: known[k] for k in requests}


class Worker:
    """A worker script running in a tool's venv; use as a context manager. It must print a line
    starting ``{"ready"`` once loaded, then one JSON line per request line."""

    def __init__(self, tool: str, python: Path, script: Path, env: dict[str, str] | None = None) -> None:
        self.tool = tool
        self.proc = subprocess.Popen(
            [str(python), str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if not self.proc.stdout.readline().startswith('{"ready"'):
            self.proc.kill()
            raise SidecarError(f"{tool}: its worker did not start (run {script} in {python} to see why)")

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """The worker's answer to one request."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SidecarError(f"{self.tool}: its worker stopped at {request}")
        return json.loads(line)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()

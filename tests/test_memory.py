"""The daemon's memory budget: peak RSS <= 60 MB on a long ``run --fast`` (scripts/bench_stream.py
measures it). Loading OpenSSL (``ssl``, or ``hashlib``'s ``_hashlib``) alone costs about 5 MB of it,
so a daemon that does not use MQTT must not load it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_RUN = """
import json, sys
from voicegender.cli import main
status = main(sys.argv[1:])
sys.stdout.flush()
openssl = sorted(m for m in ("_ssl", "_hashlib") if m in sys.modules)
print(json.dumps({"status": status, "openssl": openssl}))
"""


def test_run_loads_no_openssl_without_mqtt(fixtures_dir: Path) -> None:
    # The shipped model, so its size and sha256 are checked at load as in the field.
    args = ["run", "--input", str(fixtures_dir / "demo_male_then_female.wav"), "--fast", "--gpio", "mock"]
    args += ["--json", "--decision-log", "off"]
    result = subprocess.run(
        [sys.executable, "-c", _RUN, *args], capture_output=True, text=True, timeout=120, check=False
    )
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    decisions, report = [json.loads(line) for line in lines[:-1]], json.loads(lines[-1])
    assert report["status"] == 0, result.stderr
    assert [d["label"] for d in decisions if d["final"]] == ["male", "female"]
    assert report["openssl"] == [], (
        f"`voicegender run` loaded {report['openssl']} (OpenSSL, ~5 MB resident): import ssl/hashlib/hmac "
        "where they are used, not at the top of a module the daemon imports"
    )

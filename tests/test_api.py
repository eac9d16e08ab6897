"""The HTTP API and WebSocket stream against real servers on loopback ports, with real clients.

``voicegender serve`` runs as a subprocess for the end-to-end tests; servers with particular
settings (small limits, a token, CORS origins) run in-process, still as uvicorn on a real socket.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets.sync.client as websockets_sync
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voicegender.api.server import ApiServer
from voicegender.api.settings import ApiSettings
from voicegender.config import Config
from voicegender.runner import open_model
from voicegender.wavio import WavReader, read_wav, write_wav

FILES = ("male_1320.wav", "female_3575.wav", "demo_male_then_female.wav")


# -- helpers ----------------------------------------------------------------------------------------


def request(
    url: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one HTTP request; error statuses are returned, not raised."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def json_error(status: int, body: bytes) -> str:
    doc = json.loads(body)
    assert doc["status"] == status and isinstance(doc["error"], str) and doc["error"], doc
    return doc["error"]


def pcm16(path: Path) -> tuple[bytes, int]:
    with WavReader(path) as reader:
        audio, rate = reader.read(), reader.sample_rate
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2")
    return pcm.tobytes(), rate


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/api/v1/stream"


def stream_file(base: str, path: Path, seed: int = 0, **connect: Any) -> list[dict[str, Any]]:
    """Stream a WAV's PCM in random frame sizes (odd ones too); all messages the server sent."""
    data, rate = pcm16(path)
    rng = random.Random(seed)
    messages = []
    with websockets_sync.connect(ws_url(base), open_timeout=10, **connect) as ws:
        ws.send(json.dumps({"sample_rate": rate, "format": "s16le"}))
        messages.append(json.loads(ws.recv(timeout=10)))
        pos = 0
        while pos < len(data):
            n = rng.choice((1, 3, 160, 999, 3200, 16001, 32000))
            ws.send(data[pos : pos + n])
            pos += n
        ws.send(json.dumps({"type": "end"}))
        for text in ws:
            messages.append(json.loads(text))
    return messages


def finals(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "decision" and m["final"]]


def close_code(ws: Any) -> tuple[int, str]:
    """Read until the server closes; (close code, the error message it sent before)."""
    error = ""
    try:
        while True:
            message = json.loads(ws.recv(timeout=15))
            if message.get("type") == "error":
                error = message["error"]
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code, error


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# -- servers ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def serve(tmp_path_factory) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`voicegender serve --port 0` (any free port) as a subprocess; (base URL, process)."""
    config = tmp_path_factory.mktemp("serve") / "config.toml"
    config.write_text("")  # all defaults, whatever /etc holds
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicegender.cli", "serve", "--config", str(config), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
    if match is None:
        proc.kill()
        pytest.fail(f"serve did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    yield match.group(1), proc
    proc.terminate()
    assert proc.wait(timeout=15) == 0
    err = proc.stderr.read() if proc.stderr else ""
    assert "Traceback" not in err, err


@pytest.fixture(scope="module")
def model():
    return open_model(Config())


@pytest.fixture
def server(model) -> Iterator[Any]:
    """Start an in-process server with given [api] settings: ``server(max_streams=1, ...)``."""
    started: list[ApiServer] = []

    def start(**api: Any) -> ApiServer:
        settings = dataclasses.replace(ApiSettings(port=0), **api)
        srv = ApiServer(dataclasses.replace(Config(), api=settings), model)
        srv.start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


# -- HTTP -----------------------------------------------------------------------------------------------


def test_health(serve) -> None:
    import hashlib

    from voicegender import __version__
    from voicegender.model import DEFAULT_MODEL

    status, headers, body = request(serve[0] + "/api/v1/health")
    assert status == 200 and headers["content-type"] == "application/json"
    health = json.loads(body)
    assert health["version"] == __version__ and health["mode"] == "serve"
    assert health["model"]["sha256"] == hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest()
    assert health["model"]["name"] == DEFAULT_MODEL.stem
    assert health["microphone"]["state"] == "none"
    assert health["uptime_seconds"] >= 0


def compressed_copies(fixtures_dir: Path, tmp_path: Path) -> list[Path]:
    """FLAC, Ogg Vorbis, Ogg Opus and MP3 copies of two fixtures (libsndfile writes them)."""
    import soundfile

    out = []
    for name, (fmt, subtype, ext) in zip(
        ("male_1320.wav", "female_3575.wav", "male_1320.wav", "female_3575.wav"),
        [
            ("FLAC", "PCM_16", "flac"),
            ("OGG", "VORBIS", "ogg"),
            ("OGG", "OPUS", "opus"),
            ("MP3", "MPEG_LAYER_III", "mp3"),
        ],
        strict=True,
    ):
        audio, rate = read_wav(fixtures_dir / name)
        path = tmp_path / f"{Path(name).stem}.{ext}"
        if fmt == "OGG" and subtype == "OPUS":
            rate_out = 48000  # Opus runs at 48 kHz
            from voicegender.resample import StreamingResampler

            up = StreamingResampler(rate, rate_out)
            audio, rate = np.concatenate([up.push(audio), up.flush()]), rate_out
        soundfile.write(path, audio, rate, format=fmt, subtype=subtype)
        out.append(path)
    return out


def test_classify_answers_what_the_cli_prints(serve, fixtures_dir, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    paths = [str(fixtures_dir / name) for name in FILES]
    paths += [str(p) for p in compressed_copies(fixtures_dir, tmp_path)]
    cli = subprocess.run(
        [sys.executable, "-m", "voicegender.cli", "classify", "--json", "--config", str(config), *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.splitlines(keepends=True)
    assert len(lines) == len(paths)
    for path, line in zip(paths, lines, strict=True):
        body = Path(path).read_bytes()
        query = urllib.parse.urlencode({"name": path})
        status, headers, answer = request(
            f"{serve[0]}/api/v1/classify?{query}", body, {"Content-Type": "audio/wav"}
        )
        assert status == 200, answer
        assert headers["content-type"] == "application/json"
        assert answer.decode() == line
    labels = [json.loads(line)["label"] for line in lines]
    assert labels[:2] + labels[3:] == ["male", "female", "male", "female", "male", "female"]


def test_classify_default_name_and_octet_stream(serve, fixtures_dir) -> None:
    body = (fixtures_dir / "male_1320.wav").read_bytes()
    status, _, answer = request(
        serve[0] + "/api/v1/classify", body, {"Content-Type": "application/octet-stream"}
    )
    assert status == 200
    assert json.loads(answer)["path"] == "upload" and json.loads(answer)["label"] == "male"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"this is not audio", "audio/wav", 422, "cannot decode it"),
        (b"fLaC\0\0\0\x22" + bytes(40), "audio/flac", 422, "uploads may be WAV"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", "audio/wav", 422, "upload"),
        (b"", "audio/wav", 400, "empty"),
        (b"RIFF....WAVE", "text/plain", 415, "not audio"),
        (b"RIFF....WAVE", "", 415, "not audio"),
        (b"RIFF....WAVE", "multipart/form-data; boundary=x", 415, "not audio"),
    ],
)
def test_classify_bad_uploads(serve, body: bytes, content_type: str, status: int, words: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    got, _, answer = request(serve[0] + "/api/v1/classify", body, headers, method="POST")
    assert got == status
    assert words in json_error(status, answer)


def test_routes_and_methods(serve) -> None:
    base = serve[0]
    status, headers, body = request(base + "/api/v1/classify")
    assert status == 405 and "POST" in headers["allow"]
    json_error(405, body)
    status, _, body = request(base + "/api/v1/nothing")
    assert status == 404 and "openapi.json" in json_error(404, body)
    status, _, body = request(base + "/api/v1/state")
    assert status == 404 and "no daemon" in json_error(404, body)
    status, _, body = request(base + "/api/v1/stream")
    assert status == 426
    status, _, body = request(base + "/static/../../etc/passwd")
    assert status == 404
    status, headers, body = request(base + "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "content-security-policy" in headers


def test_openapi_describes_every_route(serve) -> None:
    status, _, body = request(serve[0] + "/api/v1/openapi.json")
    doc = json.loads(body)
    assert status == 200 and doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/health", "/state", "/decisions", "/events", "/classify", "/stream", "/openapi.json",
    }  # fmt: skip
    assert "post" in doc["paths"]["/classify"] and "413" in doc["paths"]["/classify"]["post"]["responses"]


def test_upload_limits(server) -> None:
    srv = server(max_upload_bytes=200_000, max_upload_seconds=2.0)
    url = srv.url + "/api/v1/classify"
    # Too big by Content-Length: refused before the body is read.
    status, _, body = request(url, b"\0" * 300_000, {"Content-Type": "audio/wav"})
    assert status == 413 and "200000" in json_error(413, body)
    # Too big while streaming a chunked body (no Content-Length).
    host, port = srv.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    chunks = (b"\0" * 50_000 for _ in range(10))
    conn.request("POST", "/api/v1/classify", body=chunks, headers={"Content-Type": "audio/wav"},
                 encode_chunked=True)  # fmt: skip
    resp = conn.getresponse()
    assert resp.status == 413
    json_error(413, resp.read())
    conn.close()
    # Within the bytes, but longer than max_upload_seconds.
    tone = 0.1 * np.sin(np.arange(3 * 8000) * 0.3)
    status, _, body = request(url, wav_bytes(tone, 8000), {"Content-Type": "audio/wav"})
    assert status == 413 and "3.0 s" in json_error(413, body)
    status, _, _ = request(srv.url + "/api/v1/health")
    assert status == 200


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.wav"
        write_wav(path, audio, rate)
        return path.read_bytes()


def test_upload_that_stalls_gets_408(server) -> None:
    srv = server(idle_timeout_seconds=1.0)
    host, port = srv.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
            b"Content-Length: 1000\r\n\r\nRIFF"
        )
        answer = b""
        while not answer.endswith(b"}"):  # the JSON body may come in a later segment
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"status": 408' in answer


def test_silent_and_slow_connections_are_closed(server) -> None:
    srv = server(idle_timeout_seconds=2.0, max_streams=1, max_event_clients=1)
    host, port = srv.url.removeprefix("http://").split(":")
    # Connections that send nothing, or half a request head (slowloris), are closed ...
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(40)]
    for sock in idle[::2]:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    # ... and while they are open the server refuses more than it can hold, with 503.
    assert request(srv.url + "/api/v1/health")[0] == 503
    started = time.monotonic()
    for sock in idle:
        assert sock.recv(100) == b""  # closed by the server
        sock.close()
    assert time.monotonic() - started < 10
    assert request(srv.url + "/api/v1/health")[0] == 200


# -- WebSocket stream -------------------------------------------------------------------------------


def daemon_finals(path: Path) -> list[dict[str, Any]]:
    """The daemon's final decisions for a file (`voicegender run --fast --json`)."""
    result = subprocess.run(
        [sys.executable, "-m", "voicegender.cli", "run", "--input", str(path), "--fast", "--json",
         "--gpio", "off", "--decision-log", "off", "--config", os.devnull],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def same_decisions(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    # Chunk sizes change p_female only by float rounding (README: the daemon's decisions are the
    # same for any chunk size); it is printed rounded to 4 decimals, so allow a few units there.
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g["label"] == w["label"] and g["windows"] == w["windows"]
        assert g["start"] == pytest.approx(w["start"], abs=0.011) and g["end"] == pytest.approx(
            w["end"], abs=0.011
        )
        assert g["p_female"] == pytest.approx(w["p_female"], abs=1e-3)


def test_stream_gives_the_daemons_decisions(serve, fixtures_dir) -> None:
    path = fixtures_dir / "demo_male_then_female.wav"
    messages = stream_file(serve[0], path)
    assert messages[0]["type"] == "hello" and messages[-1]["type"] == "end"
    kinds = {m["type"] for m in messages}
    assert {"state", "decision", "level"} <= kinds
    got = finals(messages)
    same_decisions(got, daemon_finals(path))
    assert [d["label"] for d in got] == ["male", "female"]
    assert all("time" in d and d["final"] is True for d in got)


def test_streams_are_isolated(serve, fixtures_dir) -> None:
    results: dict[str, list[dict[str, Any]]] = {}

    def one(name: str, seed: int) -> None:
        results[name] = finals(stream_file(serve[0], fixtures_dir / name, seed=seed))

    threads = [threading.Thread(target=one, args=(n, i)) for i, n in enumerate(FILES[:2] * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [d["label"] for d in results["male_1320.wav"]] == ["male"]
    assert [d["label"] for d in results["female_3575.wav"]] == ["female"]
    alone = finals(stream_file(serve[0], fixtures_dir / "male_1320.wav", seed=9))
    same_decisions(results["male_1320.wav"], alone)


def test_stream_at_44100_hz_stereo(serve, fixtures_dir) -> None:
    with WavReader(fixtures_dir / "female_3575.wav") as reader:
        audio, rate = reader.read(), reader.sample_rate
    from voicegender.resample import StreamingResampler

    up = StreamingResampler(rate, 44100)
    audio44 = np.concatenate([up.push(audio), up.flush()])
    stereo = np.stack([audio44, audio44], axis=1)
    pcm = np.clip(np.round(stereo * 32768.0), -32768, 32767).astype("<i2").tobytes()
    with websockets_sync.connect(ws_url(serve[0]), open_timeout=10) as ws:
        ws.send(json.dumps({"sample_rate": 44100, "format": "s16le", "channels": 2}))
        assert json.loads(ws.recv(timeout=10))["channels"] == 2
        for i in range(0, len(pcm), 17_641):
            ws.send(pcm[i : i + 17_641])
        ws.send(json.dumps({"type": "end"}))
        messages = [json.loads(m) for m in ws]
    assert [d["label"] for d in finals(messages)] == ["female"]


@pytest.mark.parametrize(
    ("first", "code", "words"),
    [
        (b"\x00\x01" * 100, 1003, "first message must be the JSON hello"),
        ("{not json", 1007, "not JSON"),
        ('{"sample_rate": 5, "format": "s16le"}', 1008, "sample_rate"),
        ('{"sample_rate": 16000, "format": "f32le"}', 1008, "format"),
        ('{"sample_rate": true}', 1008, "sample_rate"),
        ("[1, 2]", 1008, "JSON object"),
    ],
)
def test_stream_bad_hello(serve, first: Any, code: int, words: str) -> None:
    with websockets_sync.connect(ws_url(serve[0]), open_timeout=10) as ws:
        ws.send(first)
        got, error = close_code(ws)
    assert got == code and words in error


def test_stream_garbage_after_hello(serve) -> None:
    for garbage, code in (("hello?", 1007), ('{"type": "pause"}', 1008)):
        with websockets_sync.connect(ws_url(serve[0]), open_timeout=10) as ws:
            ws.send(json.dumps({"sample_rate": 16000, "format": "s16le"}))
            ws.recv(timeout=10)
            ws.send(os.urandom(3001))  # random PCM is fine (noise); an odd byte is held back
            ws.send(garbage)
            assert close_code(ws)[0] == code
    assert request(serve[0] + "/api/v1/health")[0] == 200


def test_stream_limits(server) -> None:
    srv = server(max_streams=2, max_message_bytes=4096, idle_timeout_seconds=1.0)
    url = ws_url(srv.url)
    hello = json.dumps({"sample_rate": 16000, "format": "s16le"})
    with contextlib.ExitStack() as stack:
        for _ in range(2):
            stack.enter_context(websockets_sync.connect(url, open_timeout=10))
        with pytest.raises(InvalidStatus) as denied:
            websockets_sync.connect(url, open_timeout=10)
        response = denied.value.response
        assert response.status_code == 503
        assert "at most 2" in json_error(503, response.body)
    wait_idle(srv)
    with websockets_sync.connect(url, open_timeout=10, max_size=None) as ws:
        ws.send(hello)
        ws.recv(timeout=10)
        ws.send(b"\0" * 5000)  # over max_message_bytes
        assert close_code(ws)[0] == 1009
    with websockets_sync.connect(url, open_timeout=10) as ws:
        ws.send(hello)
        ws.recv(timeout=10)
        started = time.monotonic()
        code, error = close_code(ws)  # sends nothing: the idle timeout closes it
        assert code == 1001 and "idle" in error
        assert time.monotonic() - started < 5


def wait_idle(srv: ApiServer) -> dict[str, Any]:
    """Health once no stream or upload is open any more (at most 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        health = json.loads(request(srv.url + "/api/v1/health")[2])
        if (health["streams"]["open"] == 0 and srv.app.uploads == 0) or time.monotonic() > deadline:
            return health
        time.sleep(0.05)


def test_abrupt_disconnects_leave_the_server_running(server, fixtures_dir) -> None:
    srv = server(max_streams=1)
    data, rate = pcm16(fixtures_dir / "male_1320.wav")
    for _ in range(5):
        with websockets_sync.connect(ws_url(srv.url), open_timeout=10) as ws:
            ws.send(json.dumps({"sample_rate": rate, "format": "s16le"}))
            ws.recv(timeout=10)
            ws.send(data[: 16000 * 2 + 1])  # stops mid-sample
            ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: the TCP connection just ends
        # With max_streams = 1 the next stream only gets in once this one's slot is free again.
        assert wait_idle(srv)["streams"]["open"] == 0
    host, port = srv.url.removeprefix("http://").split(":")
    for _ in range(5):  # half an upload, then gone
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /api/v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
                b"Content-Length: 100000\r\n\r\nRIFF...."
            )
    wait_idle(srv)
    assert srv.app.uploads == 0
    assert [d["label"] for d in finals(stream_file(srv.url, fixtures_dir / "male_1320.wav"))] == ["male"]


# -- security -----------------------------------------------------------------------------------------


def test_origin_and_host_checks(server) -> None:
    srv = server(cors_origins="https://app.example")
    port = srv.port
    url = srv.url + "/api/v1/health"
    assert request(url, headers={"Origin": "http://evil.example"})[0] == 403
    status, headers, _ = request(url, headers={"Origin": "https://app.example"})
    assert status == 200 and headers["access-control-allow-origin"] == "https://app.example"
    status, headers, _ = request(url, headers={"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200 and "access-control-allow-origin" not in headers
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    status, headers, _ = request(url, headers=preflight, method="OPTIONS")
    assert status == 204 and "POST" in headers["access-control-allow-methods"]
    # DNS rebinding: a page on another name that resolves to 127.0.0.1
    status, _, body = request(url, headers={"Host": f"rebound.example:{port}"})
    assert status == 403 and "loopback" in json_error(403, body)
    with pytest.raises(InvalidStatus) as denied:
        websockets_sync.connect(ws_url(srv.url), origin="http://evil.example", open_timeout=10)
    assert denied.value.response.status_code == 403
    with websockets_sync.connect(ws_url(srv.url), origin=f"http://127.0.0.1:{port}", open_timeout=10):
        pass


def test_token(server, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-0123456789\n")
    srv = server(token_file=str(token_file))
    url = srv.url + "/api/v1/health"
    status, headers, body = request(url)
    assert status == 401 and "Bearer" in headers["www-authenticate"]
    json_error(401, body)
    assert request(url, headers={"Authorization": "Bearer wrong-token-0123456789"})[0] == 401
    assert request(url, headers={"Authorization": "Bearer s3cret-token-0123456789"})[0] == 200
    assert request(url + "?access_token=s3cret-token-0123456789")[0] == 401  # only for events/stream
    assert request(srv.url + "/")[0] == 200  # the page itself asks for the token
    with pytest.raises(InvalidStatus) as denied:
        websockets_sync.connect(ws_url(srv.url), open_timeout=10)
    assert denied.value.response.status_code == 401
    with websockets_sync.connect(ws_url(srv.url) + "?access_token=s3cret-token-0123456789", open_timeout=10):
        pass


def self_signed(tmp_path: Path, *addresses: str) -> tuple[Path, Path]:
    """A throw-away certificate and key (openssl) for these IP addresses."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    san = ",".join(f"IP:{a}" for a in addresses)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=voicegender test",
         "-addext", f"subjectAltName={san}"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_https(server, tmp_path, fixtures_dir) -> None:
    import ssl

    cert, key = self_signed(tmp_path, "127.0.0.1")
    srv = server(tls_cert_file=str(cert), tls_key_file=str(key))
    assert srv.url.startswith("https://127.0.0.1:")
    trust = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(srv.url + "/api/v1/health", context=trust, timeout=30) as resp:
        assert json.loads(resp.read())["status"] == "ok"
    with pytest.raises(urllib.error.URLError):  # not trusted without the certificate
        urllib.request.urlopen(srv.url + "/api/v1/health", timeout=30)
    plain = srv.url.replace("https://", "http://") + "/api/v1/health"
    with pytest.raises((OSError, http.client.HTTPException)):  # no plain HTTP on the TLS port
        urllib.request.urlopen(plain, timeout=30).read()
    url = srv.url.replace("https://", "wss://") + "/api/v1/stream"
    data, rate = pcm16(fixtures_dir / "female_3575.wav")
    with websockets_sync.connect(url, ssl=trust, open_timeout=10) as ws:
        ws.send(json.dumps({"sample_rate": rate, "format": "s16le"}))
        ws.recv(timeout=10)
        ws.send(data)
        ws.send(json.dumps({"type": "end"}))
        assert [d["label"] for d in finals([json.loads(m) for m in ws])] == ["female"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--bind", "0.0.0.0"], "is not a loopback address: set [api] token_file"),
        (["--tls-cert", "/nonexistent/cert.pem"], "tls_cert_file and tls_key_file go together"),
        (["--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"], "cannot load them"),
        (["--token-file", "/nonexistent/token"], "token_file /nonexistent/token: unreadable"),
        (["--port", "70000"], "port must be in 0..65535"),
    ],
)
def test_serve_refuses_to_start(args: list[str], words: str, tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voicegender.cli", "serve", "--config", os.devnull, *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voicegender: error: ") and words in lines[0], lines


def test_busy_port_is_one_clear_error(serve) -> None:
    port = serve[0].rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "voicegender.cli", "serve", "--config", os.devnull, "--port", port],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        f"voicegender: error: [api] cannot listen on 127.0.0.1 port {port}"
    )


def test_stream_processors_are_freed_without_the_cycle_collector(model, fixtures_dir) -> None:
    # The server makes a processor per stream and per upload: one kept alive by a reference cycle
    # until the cyclic collector runs would pile up megabytes of buffers between collections.
    from voicegender.pipeline import StreamProcessor

    audio, rate = read_wav(fixtures_dir / "demo_male_then_female.wav")
    config = Config()
    gc.collect()
    gc.disable()
    try:
        proc = StreamProcessor(model, config.vad, config.decision, rate)
        proc.push(audio)
        proc.flush()
        refs = [weakref.ref(x) for x in (proc, proc.vad, proc.frontend, proc.decider, proc.resampler)]
        del proc
        assert [r() is None for r in refs] == [True] * len(refs)
    finally:
        gc.enable()


@pytest.mark.slow
def test_bad_requests_leak_no_memory(serve, fixtures_dir) -> None:
    base, proc = serve
    good = (fixtures_dir / "male_1320.wav").read_bytes()

    def round_of(n: int) -> None:
        for i in range(n):
            kind = i % 4
            if kind == 0:
                request(base + "/api/v1/classify", good[: 5000 + i], {"Content-Type": "audio/wav"})
            elif kind == 1:
                request(base + "/api/v1/classify", b"junk" * 100, {"Content-Type": "text/plain"})
            elif kind == 2:
                with websockets_sync.connect(ws_url(base), open_timeout=10) as ws:
                    ws.send("{not json")
                    close_code(ws)
            else:
                request(base + "/api/v1/nowhere")

    round_of(200)  # warm-up: caches, allocator pools
    before = rss_kb(proc.pid)
    round_of(1000)
    after = rss_kb(proc.pid)
    assert after - before < 5 * 1024, (before, after)
    # Good uploads and streams too.
    demo = (fixtures_dir / "demo_male_then_female.wav").read_bytes()
    for _ in range(10):
        request(base + "/api/v1/classify", demo, {"Content-Type": "audio/wav"})
    stream_file(base, fixtures_dir / "male_1320.wav")
    before = rss_kb(proc.pid)
    for i in range(40):
        assert request(base + "/api/v1/classify", demo, {"Content-Type": "audio/wav"})[0] == 200
        if i % 10 == 0:
            stream_file(base, fixtures_dir / "male_1320.wav", seed=i)
    after = rss_kb(proc.pid)
    assert after - before < 5 * 1024, (before, after)

"""The API as a plain ASGI application (no web framework; uvicorn serves it, see ``server``).

Routes (all JSON unless said otherwise; errors are ``{"error": "...", "status": N}``):

- ``GET /`` and ``GET /static/<file>``: the web page, from files in this package.
- ``GET /api/v1/health``, ``/state``, ``/decisions?limit=N``, ``/openapi.json``.
- ``GET /api/v1/events``: Server-Sent Events (``state``, ``decision``, ``level``).
- ``POST /api/v1/classify``: an audio file as the body; the answer is ``classify --json``'s line.
- ``GET /api/v1/stream``: WebSocket; a JSON hello, then s16le PCM frames of any size; the server
  sends the same events as ``/events`` for that audio, from a ``StreamProcessor`` of its own.

All model work runs in one worker thread (``ApiContext.executor``), so the event loop never waits
on inference and the interpreter is only ever used by one thread. Daemon events arrive through an
``EventHub``; a pump task fans them out to the SSE subscribers, each with a bounded queue (a
subscriber that falls behind is disconnected; its browser reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from .. import __version__
from ..decision import DecisionSettings
from ..errors import VoicegenderError
from ..events import Decision, State
from ..model import Thresholds
from ..pipeline import StreamProcessor, classify_audio
from ..vad import VadSettings
from ..wavio import Pcm16Decoder
from .decode import AUDIO_TYPES, UploadError, decode_upload, media_type
from .hub import LEVEL_INTERVAL, PENDING_EVENTS, EventHub, decision_event, level_event, state_event
from .settings import ApiSettings, is_loopback

log = logging.getLogger("voicegender.api")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PREFIX = "/api/v1"
MAX_UPLOADS = 2
"""Uploads read and classified at once; more get 503 (each may hold 10 MB of body and its samples)."""
SSE_QUEUE = PENDING_EVENTS
"""Events buffered per SSE subscriber before it counts as stuck and is disconnected."""
SSE_KEEPALIVE = 15.0
"""Seconds between SSE comment lines when nothing happens (keeps proxies from timing out)."""
STREAM_RATES = (8000, 96000)
"""Sample rates a WebSocket stream may declare."""
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
NO_DAEMON = (
    "this server has no daemon (voicegender serve answers /classify and /stream only); "
    "the daemon with [api] enabled = true serves /state, /decisions and /events"
)
CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'"
)


class HttpError(Exception):
    """Answer with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


@dataclass
class ApiContext:
    """What the routes need: settings, the model (used only in ``executor``), the daemon's hub."""

    settings: ApiSettings
    model: Any
    vad: VadSettings
    decision: DecisionSettings
    thresholds: Thresholds
    executor: Executor
    token: str | None = None
    hub: EventHub | None = None
    model_info: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


class ApiApp:
    """The ASGI application (``lifespan`` starts the pump that fans daemon events out)."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.streams = 0
        """WebSocket streams open now."""
        self.uploads = 0
        """Uploads being read or classified now."""
        self.subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._pump_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._static = resources.files(__package__).joinpath("static")
        self.loop: asyncio.AbstractEventLoop | None = None
        """The server's event loop, once it runs."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)

    # -- lifespan and the daemon's events ---------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start_pump()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop_pump()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start_pump(self) -> None:
        self.loop = asyncio.get_running_loop()
        hub = self.ctx.hub
        if hub is None or self._pump_task is not None:
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        wake = self._wake
        hub.attach(lambda: loop.call_soon_threadsafe(wake.set))
        self._pump_task = loop.create_task(self._pump(hub, wake))

    async def stop_pump(self) -> None:
        if self.ctx.hub is not None:
            self.ctx.hub.attach(None)
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None
        for queue in list(self.subscribers):
            _offer(queue, None)

    async def _pump(self, hub: EventHub, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            for event in hub.take():
                for queue in list(self.subscribers):
                    if not _offer(queue, event):
                        self.subscribers.discard(queue)  # stuck: end its stream; EventSource reconnects
                        _offer(queue, None, force=True)

    # -- HTTP ---------------------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        headers = _headers(scope)
        cors = self._cors_headers(headers)
        try:
            if path == "/" or path.startswith("/static/"):
                if method not in ("GET", "HEAD"):
                    raise HttpError(405, f"{method} {path}: only GET", [(b"allow", b"GET, HEAD")])
                await self._static_file(path, method, send)
                return
            if not path.startswith(PREFIX + "/"):
                raise HttpError(404, f"{path}: not found (the API is under {PREFIX}/)")
            self._check_host(headers)
            self._check_origin(headers)
            route = path[len(PREFIX) :]
            if method == "OPTIONS":
                await _respond(send, 204, b"", "text/plain", cors + _preflight(headers, bool(cors)))
                return
            self._check_auth(scope, headers, route in ("/events",))
            handler, allowed = self._route(route)
            if method not in allowed:
                raise HttpError(
                    405,
                    f"{method} {path}: allowed {', '.join(allowed)}",
                    [(b"allow", ", ".join(allowed).encode())],
                )
            await handler(scope, receive, send, headers, cors)
        except HttpError as exc:
            await _error(send, exc.status, exc.message, cors + exc.headers)
        except Exception:
            log.exception("api: %s %s failed", method, path)
            await _error(send, 500, "internal error; the server log has the details", cors)

    def _route(self, route: str) -> tuple[Callable[..., Awaitable[None]], tuple[str, ...]]:
        routes: dict[str, tuple[Callable[..., Awaitable[None]], tuple[str, ...]]] = {
            "/health": (self._health, ("GET",)),
            "/state": (self._state, ("GET",)),
            "/decisions": (self._decisions, ("GET",)),
            "/events": (self._events, ("GET",)),
            "/classify": (self._classify, ("POST",)),
            "/openapi.json": (self._openapi, ("GET",)),
            "/stream": (self._stream_over_http, ("GET",)),
        }
        if route not in routes:
            raise HttpError(404, f"{PREFIX}{route}: not found (see {PREFIX}/openapi.json)")
        return routes[route]

    async def _static_file(self, path: str, method: str, send: Send) -> None:
        name = "index.html" if path == "/" else path[len("/static/") :]
        suffix = name[name.rfind(".") :] if "." in name else ""
        item = self._static.joinpath(name)
        if (
            not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name)
            or suffix not in STATIC_TYPES
            or not item.is_file()
        ):
            raise HttpError(404, f"{path}: not found")
        body = item.read_bytes()
        headers = [(b"content-security-policy", CSP.encode()), (b"cache-control", b"no-cache")]
        await _respond(send, 200, b"" if method == "HEAD" else body, STATIC_TYPES[suffix], headers, len(body))

    async def _health(self, scope: Scope, receive: Receive, send: Send, headers: Any, cors: Any) -> None:
        hub = self.ctx.hub
        if hub is None:
            mic = {"state": "none", "detail": "voicegender serve has no microphone"}
        else:
            snap = hub.snapshot()
            daemon = snap["daemon_state"]
            mic_state = {"error": "error", "starting": "opening", "stopped": "closed"}.get(daemon, "open")
            mic = {"state": mic_state, "detail": snap["detail"]}
        body = {
            "status": "ok",
            "version": __version__,
            "mode": "serve" if hub is None else "daemon",
            "uptime_seconds": round(time.monotonic() - self.ctx.started, 1),
            "model": self.ctx.model_info,
            "microphone": mic,
            "streams": {"open": self.streams, "max": self.ctx.settings.max_streams},
            "thresholds": {
                "male_below": self.ctx.thresholds.male_below,
                "female_above": self.ctx.thresholds.female_above,
            },
        }
        await _json(send, 200, body, cors)

    def _need_hub(self) -> EventHub:
        if self.ctx.hub is None:
            raise HttpError(404, NO_DAEMON)
        return self.ctx.hub

    async def _state(self, scope: Scope, receive: Receive, send: Send, headers: Any, cors: Any) -> None:
        await _json(send, 200, self._need_hub().snapshot(), cors)

    async def _decisions(self, scope: Scope, receive: Receive, send: Send, headers: Any, cors: Any) -> None:
        hub = self._need_hub()
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        text = query.get("limit", ["100"])[-1]
        kept = self.ctx.settings.decisions_kept
        if not text.isdigit() or not 1 <= int(text) <= kept:
            raise HttpError(400, f"limit must be an integer in 1..{kept}, got {text!r}")
        await _json(send, 200, {"decisions": hub.decisions(int(text))}, cors)

    async def _openapi(self, scope: Scope, receive: Receive, send: Send, headers: Any, cors: Any) -> None:
        from .openapi import openapi_document

        await _json(send, 200, openapi_document(self.ctx.settings), cors)

    async def _stream_over_http(self, *args: Any) -> None:
        raise HttpError(
            426, f"{PREFIX}/stream is a WebSocket: connect with ws://", [(b"upgrade", b"websocket")]
        )

    # -- /events (SSE) ---------------------------------------------------------------------------------

    async def _events(self, scope: Scope, receive: Receive, send: Send, headers: Any, cors: Any) -> None:
        hub = self._need_hub()
        if len(self.subscribers) >= self.ctx.settings.max_event_clients:
            raise HttpError(
                503,
                f"too many event subscribers (at most {self.ctx.settings.max_event_clients})",
                [(b"retry-after", b"5")],
            )
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=SSE_QUEUE)
        self.subscribers.add(queue)
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            _offer(queue, None, force=True)

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-store"),
                        (b"x-accel-buffering", b"no"),
                        *cors,
                    ],
                }
            )
            await send(
                {"type": "http.response.body", "body": _sse("snapshot", hub.snapshot()), "more_body": True}
            )
            while not gone.is_set():
                try:
                    event = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE)
                except TimeoutError:
                    await send({"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True})
                    continue
                if event is None:
                    break
                await send(
                    {"type": "http.response.body", "body": _sse(event["type"], event), "more_body": True}
                )
            if not gone.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (OSError, asyncio.CancelledError):  # the client went away; the server stops
            pass
        finally:
            self.subscribers.discard(queue)
            watcher.cancel()

    # -- /classify ---------------------------------------------------------------------------------------

    async def _classify(self, scope: Scope, receive: Receive, send: Send, headers: Any, cors: Any) -> None:
        s = self.ctx.settings
        kind = media_type(headers.get("content-type", ""))
        if kind not in AUDIO_TYPES:
            raise HttpError(
                415,
                f"content type {kind or '(none)'!r} is not audio; send the file with "
                f"Content-Type: one of {', '.join(AUDIO_TYPES)}",
            )
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > s.max_upload_bytes):
            raise HttpError(413, f"body of {length} bytes; at most {s.max_upload_bytes} bytes per upload")
        if self.uploads >= MAX_UPLOADS:
            raise HttpError(
                503,
                f"busy: {MAX_UPLOADS} uploads are being classified; retry shortly",
                [(b"retry-after", b"1")],
            )
        query = parse_qs(scope.get("query_string", b"").decode("utf-8", "replace"))
        name = _clean_name(query.get("name", ["upload"])[-1])
        self.uploads += 1
        try:
            body = await self._read_body(receive, s.max_upload_bytes)
            loop = asyncio.get_running_loop()
            line = await loop.run_in_executor(self.ctx.executor, self._classify_now, body, name)
        finally:
            self.uploads -= 1
        await _respond(send, 200, (line + "\n").encode(), "application/json", cors)

    async def _read_body(self, receive: Receive, limit: int) -> bytes:
        chunks, size = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.ctx.settings.idle_timeout_seconds)
            except TimeoutError:
                raise HttpError(408, "the upload stalled; send the whole body without pauses") from None
            if message["type"] == "http.disconnect":
                raise HttpError(400, "the client disconnected during the upload")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"body larger than {limit} bytes; at most {limit} bytes per upload")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _classify_now(self, body: bytes, name: str) -> str:
        from ..cli import classify_json

        try:
            audio, rate = decode_upload(body, name, self.ctx.settings.max_upload_seconds)
            decision = classify_audio(audio, rate, self.ctx.model, self.ctx.vad, self.ctx.decision)
        except UploadError as exc:
            raise HttpError(exc.status, str(exc)) from None
        except VoicegenderError as exc:
            raise HttpError(422, str(exc)) from None
        return classify_json(name, decision)

    # -- /stream (WebSocket) ------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        try:
            if scope["path"] != PREFIX + "/stream":
                raise HttpError(404, f"{scope['path']}: no WebSocket here (use {PREFIX}/stream)")
            self._check_host(headers)
            self._check_origin(headers)
            self._check_auth(scope, headers, allow_query=True)
            if self.streams >= self.ctx.settings.max_streams:
                raise HttpError(
                    503,
                    f"too many streams (at most {self.ctx.settings.max_streams}); retry later",
                    [(b"retry-after", b"5")],
                )
        except HttpError as exc:
            await _deny(scope, send, exc)
            return
        self.streams += 1
        try:
            await send({"type": "websocket.accept"})
            await StreamSession(self.ctx, receive, send).run()
        except OSError:
            pass  # the client vanished
        except Exception:
            log.exception("api: stream failed")
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1011, "reason": "internal error"})
        finally:
            self.streams -= 1

    # -- checks ---------------------------------------------------------------------------------------

    def _check_host(self, headers: dict[str, str]) -> None:
        """Without a token, only loopback host names (a DNS-rebinding page cannot reach the API)."""
        if self.ctx.token is not None:
            return
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if not is_loopback(name):
            raise HttpError(403, f"host {host!r} not allowed: this server answers only on loopback")

    def _check_origin(self, headers: dict[str, str]) -> None:
        origin = headers.get("origin")
        if origin is None or origin in self.ctx.settings.origins:
            return
        if origin.split("://", 1)[-1] == headers.get("host"):
            return  # the page itself
        raise HttpError(403, f"origin {origin!r} not allowed (add it to [api] cors_origins)")

    def _check_auth(self, scope: Scope, headers: dict[str, str], allow_query: bool) -> None:
        token = self.ctx.token
        if token is None:
            return
        given = headers.get("authorization", "")
        sent = given[7:].strip() if given[:7].lower() == "bearer " else ""
        if not sent and allow_query:  # browsers cannot set headers on EventSource and WebSocket
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            sent = query.get("access_token", [""])[-1]
        if not sent or not hmac.compare_digest(sent.encode(), token.encode()):
            raise HttpError(
                401,
                "missing or wrong token: send Authorization: Bearer <token>",
                [(b"www-authenticate", b'Bearer realm="voicegender"')],
            )

    def _cors_headers(self, headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
        origin = headers.get("origin")
        if origin is None or origin not in self.ctx.settings.origins:
            return []
        return [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]


class StreamSession:
    """One WebSocket stream: a hello, then PCM frames through a ``StreamProcessor`` of its own."""

    def __init__(self, ctx: ApiContext, receive: Receive, send: Send) -> None:
        self.ctx = ctx
        self.receive = receive
        self.send = send
        self.processor: StreamProcessor | None = None
        self.decoder: Pcm16Decoder | None = None
        self._last_level = -math.inf
        self._speech = False

    async def run(self) -> None:
        hello = await self._next()
        if hello is None:
            return
        if "text" not in hello or hello["text"] is None:
            await self._close(
                1003, 'first message must be the JSON hello {"sample_rate": 16000, "format": "s16le"}'
            )
            return
        problem = self._start(hello["text"])
        if problem:
            await self._close(1007 if problem.startswith("hello is not JSON") else 1008, problem)
            return
        assert self.processor is not None and self.decoder is not None
        await self._send_json(
            {
                "type": "hello",
                "sample_rate": self.processor.input_rate,
                "format": "s16le",
                "channels": self.decoder.channels,
                "max_message_bytes": self.ctx.settings.max_message_bytes,
            }
        )
        loop = asyncio.get_running_loop()
        while True:
            message = await self._next()
            if message is None:
                return
            data = message.get("bytes")
            if data is not None:
                samples = self.decoder.decode(data)
                if samples.size:
                    events = await loop.run_in_executor(self.ctx.executor, self.processor.push, samples)
                    await self._events(events)
                continue
            text = message.get("text") or ""
            try:
                command = json.loads(text)
            except ValueError:
                await self._close(1007, 'text messages must be JSON, e.g. {"type": "end"}')
                return
            if not isinstance(command, dict) or command.get("type") != "end":
                await self._close(1008, 'unknown message; send PCM as binary frames, then {"type": "end"}')
                return
            events = await loop.run_in_executor(self.ctx.executor, self.processor.flush)
            await self._events(events, force_level=False)
            await self._send_json({"type": "end", "seconds": round(self.processor.position, 3)})
            await self.send({"type": "websocket.close", "code": 1000, "reason": "end of stream"})
            return

    def _start(self, text: str) -> str:
        """Build the processor from the hello; an error message if the hello is unusable."""
        try:
            hello = json.loads(text)
        except ValueError:
            return "hello is not JSON"
        if not isinstance(hello, dict):
            return "hello must be a JSON object"
        rate, fmt, channels = hello.get("sample_rate"), hello.get("format", "s16le"), hello.get("channels", 1)
        low, high = STREAM_RATES
        if not isinstance(rate, int) or isinstance(rate, bool) or not low <= rate <= high:
            return f"hello: sample_rate must be an integer in {low}..{high}, got {rate!r}"
        if fmt != "s16le":
            return f'hello: format must be "s16le" (16-bit little-endian PCM), got {fmt!r}'
        if not isinstance(channels, int) or isinstance(channels, bool) or not 1 <= channels <= 8:
            return f"hello: channels must be an integer in 1..8, got {channels!r}"
        ctx = self.ctx
        self.processor = StreamProcessor(ctx.model, ctx.vad, ctx.decision, rate, ctx.thresholds)
        self.decoder = Pcm16Decoder(channels)
        return ""

    async def _next(self) -> dict[str, Any] | None:
        """The next message; None once the client is gone or (after telling it) idle too long."""
        try:
            message = await asyncio.wait_for(self.receive(), self.ctx.settings.idle_timeout_seconds)
        except TimeoutError:
            await self._close(1001, f"idle for {self.ctx.settings.idle_timeout_seconds:g} s")
            return None
        if message["type"] == "websocket.disconnect":
            return None
        return message

    async def _events(self, events: list[State | Decision], force_level: bool = True) -> None:
        now = time.time()
        proc = self.processor
        assert proc is not None
        for event in events:
            if isinstance(event, Decision):
                await self._send_json(decision_event(event, now))
            else:
                self._speech = event is State.SPEECH
                await self._send_json({**state_event(event, "", now), "t": round(proc.position, 3)})
        if force_level and proc.position - self._last_level >= LEVEL_INTERVAL:
            self._last_level = proc.position
            event = level_event(proc.level_db, self._speech, now)
            await self._send_json({**event, "t": round(proc.position, 3)})

    async def _send_json(self, obj: dict[str, Any]) -> None:
        await self.send({"type": "websocket.send", "text": json.dumps(obj, allow_nan=False)})

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self._send_json({"type": "error", "error": reason, "code": code})
            await self.send({"type": "websocket.close", "code": code, "reason": reason[:120]})


# -- helpers -------------------------------------------------------------------------------------------


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _offer(queue: asyncio.Queue[Any], item: Any, force: bool = False) -> bool:
    """Put without waiting; with ``force`` make room by dropping the oldest. False if full."""
    try:
        queue.put_nowait(item)
        return True
    except asyncio.QueueFull:
        if not force:
            return False
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
        queue.put_nowait(item)
        return True


def _clean_name(text: str) -> str:
    """An upload's name for the answer and messages: printable, at most 200 characters."""
    name = "".join(c for c in text if c.isprintable())[:200]
    return name or "upload"


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, allow_nan=False)}\n\n".encode()


def _preflight(headers: dict[str, str], allowed: bool) -> list[tuple[bytes, bytes]]:
    if not allowed:
        return []
    return [
        (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
        (b"access-control-allow-headers", b"authorization, content-type"),
        (b"access-control-max-age", b"600"),
    ]


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    length: int | None = None,
) -> None:
    head = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body) if length is None else length).encode()),
        (b"x-content-type-options", b"nosniff"),
        *(headers or []),
    ]
    if not any(k == b"cache-control" for k, _ in head):
        head.append((b"cache-control", b"no-store"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await _respond(send, status, json.dumps(obj, allow_nan=False).encode(), "application/json", headers)


async def _error(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    with contextlib.suppress(Exception):  # the response may have started, or the client gone
        await _json(send, status, {"error": message, "status": status}, headers)


async def _deny(scope: Scope, send: Send, exc: HttpError) -> None:
    """Refuse a WebSocket handshake with an HTTP status and a JSON body (or close 1008 without)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps({"error": exc.message, "status": exc.status}).encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": exc.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *exc.headers,
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1013 if exc.status == 503 else 1008})

"""Runs the API: a uvicorn server on its own thread and event loop, with one inference thread.

``ApiServer`` serves ``voicegender serve`` (no daemon) and, as the daemon's ``api`` output slot
(see ``runner``), the daemon with ``[api] enabled = true``: then the daemon's events reach it
through an ``EventHub`` and the audio loop never waits on the API. The server has a model of its
own (a TFLite interpreter must not be shared between threads), used only by its inference thread.
The listening socket is bound before the thread starts, so a busy port is an error at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import VoicegenderError
from ..events import Decision, State
from ..frontend import FRONTEND_VERSION
from ..model import METADATA_VERSION
from .app import ApiApp, ApiContext
from .hub import EventHub

log = logging.getLogger("voicegender.api")

START_TIMEOUT = 15.0
"""Seconds the server may take to start listening."""
HEAD_TIMEOUT = 10.0
"""Longest a connection may take to send a request's head (at most [api] idle_timeout_seconds)."""
SPARE_CONNECTIONS = 32
"""Connections allowed beyond max_streams + max_event_clients (page loads, uploads); more get 503."""


def model_info(model: Any) -> dict[str, Any]:
    """Name, sha256 and front-end version of a loaded model, for /api/v1/health."""
    path = model.path
    meta = model.metadata
    digest = meta.extra.get("model_sha256") or hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "name": path.stem,
        "file": path.name,
        "sha256": digest,
        "metadata_version": METADATA_VERSION,
        "frontend_version": FRONTEND_VERSION,
        "runtime": getattr(model, "runtime", ""),
    }


class ApiServer:
    """The API for ``config`` (its [api], [vad], [decision] sections), with ``hub`` when in the daemon."""

    def __init__(self, config: Any, model: Any, thresholds: Any = None, hub: EventHub | None = None) -> None:
        settings = config.api
        self.settings = settings
        token = settings.read_token()  # refuses a non-loopback address without a token
        self.hub = hub
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voicegender-api-inference")
        thresholds = thresholds or config.decision.thresholds(model.metadata.thresholds)
        self.ctx = ApiContext(
            settings=settings,
            model=model,
            vad=config.vad,
            decision=config.decision,
            thresholds=thresholds,
            executor=self._executor,
            token=token,
            hub=hub,
            model_info=model_info(model),
        )
        self.app = ApiApp(self.ctx)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = settings.port
        """The port listened on (the kernel's choice when [api] port is 0)."""

    @property
    def url(self) -> str:
        host = self.settings.bind
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.settings.tls else 'http'}://{host}:{self.port}"

    def start(self) -> None:
        """Listen and serve on a background thread; VoicegenderError if that cannot be done."""
        try:
            import uvicorn
        except ImportError as exc:
            raise VoicegenderError(
                f"the API needs uvicorn and websockets ({exc}); install them with "
                "pip install 'voicegender[api]', or set [api] enabled = false"
            ) from None
        s = self.settings
        tls = _tls_files(s) if s.tls else {}
        family = socket.AF_INET6 if ":" in s.bind else socket.AF_INET
        try:
            sock = socket.create_server((s.bind.strip("[]"), s.port), family=family, reuse_port=False)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise VoicegenderError(
                f"[api] cannot listen on {s.bind} port {s.port}: {reason}"
                + ("; another program (or another voicegender) uses that port" if exc.errno == 98 else "")
            ) from None
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            loop="asyncio",
            http=_head_timeout_protocol(min(HEAD_TIMEOUT, s.idle_timeout_seconds)),
            limit_concurrency=s.max_streams + s.max_event_clients + SPARE_CONNECTIONS,
            ws="websockets-sansio",
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            ws_max_size=s.max_message_bytes,
            ws_per_message_deflate=False,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=2,
            h11_max_incomplete_event_size=16 * 1024,
            **tls,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="voicegender-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise VoicegenderError(f"[api] the server on {self.url} did not start")
            time.sleep(0.01)
        log.info("API and web page on %s%s", self.url, " (token required)" if self.ctx.token else "")

    def stop(self) -> None:
        """Stop serving (open streams are closed) and release the port."""
        loop = self.app.loop
        if loop is not None and self.running:
            # End the SSE streams first: the server's graceful shutdown would wait for them.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.app.stop_pump(), loop).result(timeout=2.0)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def _head_timeout_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol, closing a connection that sends no complete request head in ``seconds``.

    uvicorn only times out idle keep-alive connections after a response; a client that connects
    and sends nothing, or half a header (slowloris), would otherwise hold its connection forever.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadTimeoutProtocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_timer()  # the next request on this connection gets the same time

        def _arm_head_timer(self) -> None:
            self.loop.call_later(seconds, self._head_timeout, self.cycle)

        def _head_timeout(self, cycle: Any) -> None:
            # Still no new request since the timer was armed, and not upgraded to a WebSocket?
            transport = self.transport
            if self.cycle is cycle and not transport.is_closing() and transport.get_protocol() is self:
                transport.close()

    return HeadTimeoutProtocol


def _tls_files(settings: Any) -> dict[str, str]:
    """uvicorn's TLS arguments, after checking the files load as a certificate and its key."""
    import ssl

    cert, key = (str(Path(p).expanduser()) for p in (settings.tls_cert_file, settings.tls_key_file))
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise VoicegenderError(
            f"[api] tls_cert_file {cert} / tls_key_file {key}: cannot load them ({reason}); "
            "give a PEM certificate and its private key"
        ) from None
    return {"ssl_certfile": cert, "ssl_keyfile": key}


def only_loopback(net_dir: Path = Path("/sys/class/net")) -> bool:
    """True when this process sees no network interface but loopback (systemd's PrivateNetwork=yes)."""
    try:
        return {p.name for p in net_dir.iterdir()} == {"lo"}
    except OSError:
        return False


NO_NETWORK_HINT = (
    "the API is on, but this service has no network of its own (PrivateNetwork=yes): nothing outside "
    "it can connect, not even from this machine; install the network drop-in with install.sh --api"
)


class ApiOutput:
    """The daemon's ``api`` output: an ``EventHub`` fed by the audio loop, and the server reading it."""

    def __init__(self, config: Any, thresholds: Any) -> None:
        from ..runner import open_model

        self.hub = EventHub(config.api.decisions_kept, config.leds.decision_hold_seconds)
        self.server = ApiServer(config, open_model(config), thresholds, hub=self.hub)
        self.server.start()
        if only_loopback():
            log.warning(NO_NETWORK_HINT)

    def on_state(self, state: State, detail: str = "") -> None:
        self.hub.on_state(state, detail)

    def on_decision(self, decision: Decision) -> None:
        self.hub.on_decision(decision)

    def on_chunk(self, processor: Any) -> None:
        self.hub.on_chunk(processor)

    def close(self) -> None:
        self.server.stop()


__all__ = ["ApiOutput", "ApiServer", "__version__", "model_info"]

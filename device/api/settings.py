"""The ``[api]`` config section, the bearer token and what counts as a loopback address."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ..errors import VoicegenderError

LOOPBACK_NAMES = ("localhost",)
"""Host names that always mean this machine (besides 127.0.0.0/8 and ::1)."""


def is_loopback(host: str) -> bool:
    """True for a loopback address (127.x.x.x, ::1) or "localhost"."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ApiSettings:
    """The local HTTP API and web page ([api] in the config; `voicegender serve` always serves it)."""

    enabled: bool = False
    """The daemon also serves the API and the web page (needs the api extra: uvicorn)."""
    bind: str = "127.0.0.1"
    """Address to listen on; anything but loopback needs token_file (e.g. "0.0.0.0" for the LAN)."""
    port: int = 8750
    """TCP port; 0 = any free port (the one chosen is logged)."""
    token_file: str = ""
    """File holding the bearer token requests must send (Authorization: Bearer ...); empty = none."""
    tls_cert_file: str = ""
    """PEM certificate for HTTPS (the page gets a browser's microphone only on https or localhost)."""
    tls_key_file: str = ""
    """PEM private key of tls_cert_file."""
    cors_origins: str = ""
    """Other web origins allowed to call the API, space-separated ("https://app.example"); empty = none."""
    max_streams: int = 4
    """Concurrent /api/v1/stream WebSocket clients; more get HTTP 503."""
    max_event_clients: int = 16
    """Concurrent /api/v1/events subscribers; more get HTTP 503."""
    max_upload_bytes: int = 10 * 1024 * 1024
    """Largest /api/v1/classify upload (bytes); larger bodies get HTTP 413."""
    max_upload_seconds: float = 60.0
    """Longest audio /api/v1/classify accepts (seconds); longer gets HTTP 413."""
    max_message_bytes: int = 256 * 1024
    """Largest WebSocket message (bytes); a larger one closes the stream (code 1009)."""
    idle_timeout_seconds: float = 30.0
    """A stream that sends nothing, or an upload that stalls, for this long is closed."""
    decisions_kept: int = 1000
    """Final decisions kept in memory for /api/v1/decisions and the page's timeline."""

    def __post_init__(self) -> None:
        problems = []
        if not self.bind.strip():
            problems.append('bind must be an address, e.g. "127.0.0.1"')
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be in 0..65535, got {self.port}")
        if not 1 <= self.max_streams <= 256 or not 1 <= self.max_event_clients <= 256:
            problems.append("max_streams and max_event_clients must be in 1..256")
        if not 1024 <= self.max_upload_bytes <= 100 * 1024 * 1024:
            problems.append(f"max_upload_bytes must be in 1024..104857600, got {self.max_upload_bytes}")
        if not 1.0 <= self.max_upload_seconds <= 600.0:
            problems.append(f"max_upload_seconds must be in [1, 600], got {self.max_upload_seconds}")
        if not 1024 <= self.max_message_bytes <= 16 * 1024 * 1024:
            problems.append(f"max_message_bytes must be in 1024..16777216, got {self.max_message_bytes}")
        if not 1.0 <= self.idle_timeout_seconds <= 3600.0:
            problems.append(f"idle_timeout_seconds must be in [1, 3600], got {self.idle_timeout_seconds}")
        if not 1 <= self.decisions_kept <= 100000:
            problems.append(f"decisions_kept must be in 1..100000, got {self.decisions_kept}")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            problems.append("tls_cert_file and tls_key_file go together: set both or neither")
        for origin in self.origins:
            if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
                problems.append(f'cors_origins: {origin!r} is not an origin like "https://host:port"')
        if problems:
            raise VoicegenderError(f"[api] {'; '.join(problems)}")

    @property
    def origins(self) -> tuple[str, ...]:
        """``cors_origins`` as a tuple."""
        return tuple(self.cors_origins.split())

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.bind)

    def read_token(self) -> str | None:
        """The token from ``token_file`` (None without one); refuses to go beyond loopback without it."""
        if not self.token_file:
            if not self.loopback:
                raise VoicegenderError(
                    f"[api] bind = {self.bind!r} is not a loopback address: set [api] token_file "
                    "(a file holding a secret token) so that only clients with the token get in"
                )
            return None
        path = Path(self.token_file).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise VoicegenderError(f"[api] token_file {path}: unreadable ({reason})") from None
        if len(token) < 16 or any(c.isspace() for c in token) or not token.isprintable():
            raise VoicegenderError(
                f"[api] token_file {path}: the token must be one line of at least 16 printable characters "
                "without spaces (e.g. from `openssl rand -hex 24`)"
            )
        return token

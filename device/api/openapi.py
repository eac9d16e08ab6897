"""The OpenAPI 3 description of the API, served at ``/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from .. import __version__
from .decode import AUDIO_TYPES
from .settings import ApiSettings


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(description: str, schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


DECISION = {
    "type": "object",
    "description": "A decision as the decisions log records it (time is when it was made, UTC).",
    "properties": {
        "time": {"type": "string", "format": "date-time"},
        "label": {"type": "string", "enum": ["male", "female", "uncertain", "no_speech"]},
        "p_female": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "speech_seconds": {"type": "number"},
        "start": {"type": "number", "description": "seconds from the start of the input"},
        "end": {"type": "number"},
        "windows": {"type": "integer"},
        "final": {"type": "boolean", "description": "false: provisional, while the person still speaks"},
    },
    "required": ["time", "label", "p_female", "speech_seconds", "start", "end", "windows", "final"],
}


def openapi_document(settings: ApiSettings) -> dict[str, Any]:
    """The document; limits are the configured ones."""
    no_daemon = _error("No daemon here (voicegender serve serves /classify and /stream only)")
    unauthorised = _error("Missing or wrong bearer token (only when [api] token_file is set)")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "voicegender",
            "version": __version__,
            "description": "On-device voice gender classification: perceived voice gender (male / female / "
            "uncertain) of speech, from a microphone (the daemon), an uploaded file or a PCM stream. "
            "Nothing is stored; uploads are decoded in memory.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/health": {
                "get": {
                    "summary": "Model, microphone, uptime and version",
                    "responses": {"200": _ok("Health", "Health"), "401": unauthorised},
                }
            },
            "/state": {
                "get": {
                    "summary": "The daemon's state, input level and current or last decision",
                    "responses": {"200": _ok("State", "State"), "404": no_daemon, "401": unauthorised},
                }
            },
            "/decisions": {
                "get": {
                    "summary": "Recent final decisions, as the decisions log records them, oldest first",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": settings.decisions_kept,
                                "default": 100,
                            },
                        }
                    ],
                    "responses": {
                        "200": _ok("Decisions", "Decisions"),
                        "400": _error("Bad limit"),
                        "404": no_daemon,
                        "401": unauthorised,
                    },
                }
            },
            "/events": {
                "get": {
                    "summary": "Server-Sent Events: `snapshot` (the state at connection), then `state` on "
                    "each state change, `decision` on each decision (provisional ones have final false) and "
                    "`level` (input level, at most 5 a second). Browsers may pass the token as "
                    "?access_token=.",
                    "responses": {
                        "200": {
                            "description": "text/event-stream; each data line is JSON",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        "404": no_daemon,
                        "401": unauthorised,
                        "503": _error("Too many subscribers"),
                    },
                }
            },
            "/classify": {
                "post": {
                    "summary": "Classify an audio file sent as the body; the answer is exactly the line "
                    "`voicegender classify --json` prints for that file",
                    "parameters": [
                        {
                            "name": "name",
                            "in": "query",
                            "description": "the answer's path field",
                            "schema": {"type": "string", "default": "upload"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "description": f"at most {settings.max_upload_bytes} bytes "
                        f"and {settings.max_upload_seconds:g} s of audio",
                        "content": {
                            t: {"schema": {"type": "string", "format": "binary"}} for t in AUDIO_TYPES
                        },
                    },
                    "responses": {
                        "200": _ok("The decision", "Classification"),
                        "400": _error("Empty body or client gone"),
                        "401": unauthorised,
                        "408": _error("The upload stalled"),
                        "413": _error("Too large or too long"),
                        "415": _error("Not an audio content type"),
                        "422": _error("The audio cannot be decoded"),
                        "503": _error("Busy"),
                    },
                }
            },
            "/stream": {
                "get": {
                    "summary": 'WebSocket. Send a JSON hello {"sample_rate": 16000, "format": "s16le", '
                    '"channels": 1}, then binary frames of 16-bit little-endian PCM of any size, then '
                    '{"type": "end"} to get the last decision. The server answers {"type": "hello"}, then '
                    "the /events messages (state, decision, level; with t = seconds of the stream) and "
                    '{"type": "end"}. Errors: {"type": "error"} and a close code (1003 binary before the '
                    f"hello, 1007 not JSON, 1008 bad hello or message, 1009 message over "
                    f"{settings.max_message_bytes} bytes, "
                    f"1001 idle for {settings.idle_timeout_seconds:g} s). "
                    "Browsers may pass the token as ?access_token=.",
                    "responses": {
                        "101": {"description": "Switching to WebSocket"},
                        "401": unauthorised,
                        "403": _error("Origin or host not allowed"),
                        "503": _error(f"More than {settings.max_streams} streams"),
                    },
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
                    "required": ["error", "status"],
                },
                "Decision": DECISION,
                "Decisions": {
                    "type": "object",
                    "properties": {
                        "decisions": {"type": "array", "items": {"$ref": "#/components/schemas/Decision"}}
                    },
                },
                "Classification": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "label": DECISION["properties"]["label"],
                        "p_female": {"type": ["number", "null"]},
                        "speech_seconds": {"type": "number"},
                        "start": {"type": "number"},
                        "end": {"type": "number"},
                        "windows": {"type": "integer"},
                    },
                },
                "State": {
                    "type": "object",
                    "properties": {
                        "state": {
                            "type": "string",
                            "enum": ["starting", "listening", "speech", "decided", "error", "stopped"],
                        },
                        "daemon_state": {"type": "string"},
                        "detail": {"type": "string"},
                        "since": {"type": "string", "format": "date-time"},
                        "level_db": {"type": ["number", "null"]},
                        "decision": {"oneOf": [{"$ref": "#/components/schemas/Decision"}, {"type": "null"}]},
                        "hold_seconds": {"type": "number"},
                    },
                },
                "Health": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string"},
                        "version": {"type": "string"},
                        "mode": {"type": "string", "enum": ["serve", "daemon"]},
                        "uptime_seconds": {"type": "number"},
                        "model": {"type": "object"},
                        "microphone": {"type": "object"},
                        "streams": {"type": "object"},
                        "thresholds": {"type": "object"},
                    },
                },
            },
        },
    }

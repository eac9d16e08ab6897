"""The local HTTP API and web page (``voicegender serve``, or the daemon with ``[api] enabled = true``).

``settings`` (the ``[api]`` config section), ``hub`` (daemon events handed to the API thread),
``app`` (the ASGI application), ``decode`` (uploads decoded in memory) and ``openapi`` import with
the standard library and numpy alone; ``server`` imports uvicorn (the ``api`` extra) only when a
server starts, so the daemon with the API off loads nothing more than before.
"""

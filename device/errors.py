"""The one error type users see: a one-line message that names the thing and the problem."""


class VoicegenderError(Exception):
    """A user-facing error; the CLI prints ``voicegender: error: <message>`` and exits non-zero."""

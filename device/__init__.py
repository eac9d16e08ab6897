"""voicegender device package: numpy-only front end, TFLite inference and the daemon.

Importing this package needs numpy alone; the interpreter, sounddevice, gpiozero and systemd
are imported where they are used.
"""

__version__ = "0.1.0"

"""voicegender training package (desktop): datasets -> features -> CNN -> int8 TFLite -> report."""

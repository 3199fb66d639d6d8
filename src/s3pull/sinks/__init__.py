"""Sinks: where downloaded bytes go."""

from ._tempfile import TEMP_MARKER, TEMP_SUFFIX, TempFile, local_error

__all__ = ["TEMP_MARKER", "TEMP_SUFFIX", "TempFile", "local_error"]

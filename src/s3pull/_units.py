"""Human sizes (``64MiB``, ``8MB``, ``1.5GiB``, ``1048576``) and durations (``90s``, ``2h``)."""

from __future__ import annotations

import re

from ._errors import ConfigError

_UNITS = {
    "": 1,
    "B": 1,
    "K": 1024,
    "KB": 1000,
    "KIB": 1024,
    "M": 1024**2,
    "MB": 1000**2,
    "MIB": 1024**2,
    "G": 1024**3,
    "GB": 1000**3,
    "GIB": 1024**3,
    "T": 1024**4,
    "TB": 1000**4,
    "TIB": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Parse a byte count written for humans.

    Decimal suffixes (``KB``, ``MB``, ``GB``) are powers of 1000, binary ones
    (``KiB``, ``MiB``, ``GiB``) and bare letters (``K``, ``M``, ``G``) powers
    of 1024, as in s5cmd and rclone.

    Args:
        text: ``"64MiB"``, ``"8MB"``, ``"512"``, or an int.

    Returns:
        The size in bytes.

    Raises:
        ConfigError: the text is not a size.

    Example:
        >>> parse_size("8MiB")
        8388608
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ConfigError(f"size must not be negative: {text}")
        return text
    match = _SIZE.match(str(text))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ConfigError(f"not a size: {text!r} (examples: 64MiB, 8MB, 1048576)")
    # Decimal, not float: 1.005KB is 1005 bytes and 2**60 stays exact.
    # Imported here: a run that is given no size never needs it.
    from decimal import Decimal

    return int(Decimal(match.group(1)) * _UNITS[unit])


def parse_rate(text: str | int) -> int:
    """Parse a bandwidth in bytes/s: a size, optionally followed by ``/s``.

    Example:
        >>> parse_rate("50MiB/s")
        52428800
    """
    if isinstance(text, str):
        text = text.strip().removesuffix("/s")
    return parse_size(text)


def format_size(n: float) -> str:
    """Format a byte count with binary units, e.g. ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """Parse a duration: seconds, or a number with ``s``, ``m``, ``h`` or ``d``.

    Example:
        >>> parse_duration("2h")
        7200.0
    """
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(f"not a duration: {text!r} (examples: 90, 30m, 2h, 7d)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]

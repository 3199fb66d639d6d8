"""Small helpers shared by the test tiers."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def leftovers(directory: Path) -> list[str]:
    """Every entry in ``directory``: temp files s3pull might have left included."""
    return sorted(p.name for p in directory.iterdir())


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic random bytes, so that an offset bug shows up as a mismatch."""
    return random.Random(seed).randbytes(size)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

"""How much of the memory budget an ordered stream may hold, and in what parts. Pure code.

Why streams are planned apart from GETs
---------------------------------------
A GET takes its stream cost from the budget and gives it back when its body
is done; nothing it waits for needs more budget, so GETs alone can never
deadlock. A stream's window is different: it is held for as long as the
stream is open, and the stream only closes once its GETs have been served.
If windows could take the whole budget, two streams of 32 MiB on a 64 MiB
budget would each wait forever for the GETs that fill them. So windows (and
whatever else is held while a stream is open, such as a parsing pipeline's
buffers) come from a *holdable* part of the budget, :func:`holdable`: the
budget less a reserve that only GETs use, never less than one stream cost.
Whatever the streams hold, some GET can always run, so every stream keeps
moving. File downloads and batches beside them hold nothing between GETs:
they draw on the reserve and on whatever the windows leave free, a GET at
a time, in the same first-come-first-served queue as the streams' GETs.

What a stream needs at least
----------------------------
One part in its window (the one the reader is in) and one GET to fill it,
which the reserve provides. A stream asks for its window (default 32 MiB or
half the budget) and gets :func:`fit_window` of what is free of the holdable
pool: all of it when it fits, else what is left, in whole parts (re-sized
for the smaller window), down to one part. When not even one part is free,
it waits its turn for a window to close; when one part could never fit,
opening fails at once with a ``ConfigError``.
"""

from __future__ import annotations

from .._config import MiB

#: Bounds for the part size an ordered stream picks from its window.
MIN_STREAM_PART = 1 * MiB
MAX_STREAM_PART = 8 * MiB
#: Parts the window aims to hold: enough GETs in flight to hide latency.
TARGET_AHEAD = 8
#: GETs the reserve aims to keep for the budget's downloads beside its streams.
RESERVED_GETS = 8


def stream_part_size(window: int, requested: int | None = None) -> int:
    """The part size of an ordered stream: ``window / 8`` within 1-8 MiB.

    Example:
        >>> stream_part_size(32 * MiB) // MiB
        4
    """
    if requested:
        return requested
    per_part = window // TARGET_AHEAD
    return max(MIN_STREAM_PART, min(MAX_STREAM_PART, per_part // MiB * MiB))


def holdable(limit: int, stream_cost: int) -> int:
    """Bytes of a ``limit``-byte budget that open streams may hold together.

    The rest is kept for GETs: :data:`RESERVED_GETS` of them, or a quarter of
    the budget if less, but never less than one, so that some GET can always
    be sent (see the module docstring).

    Example:
        >>> holdable(64 * MiB, 768 * 1024) // MiB
        58
    """
    reserve = max(stream_cost, min(RESERVED_GETS * stream_cost, limit // 4))
    return max(0, limit - reserve)


def fit_window(
    free: int, *, wanted: int, part_size: int | None = None, extra: int = 0
) -> tuple[int, int] | None:
    """``(window, part_size)`` of a stream that finds ``free`` holdable bytes,
    or None if not even one part fits (it then waits for more).

    Args:
        free: holdable bytes no other stream holds.
        wanted: the window asked for.
        part_size: a part size asked for; None derives it from the window.
        extra: bytes held beside the window (a parsing pipeline's).

    Example:
        >>> [w // MiB for w in fit_window(20 * MiB, wanted=32 * MiB)]
        [20, 2]
    """
    room = min(wanted, free - extra)
    if room <= 0:
        return None
    part = stream_part_size(room, part_size)
    window = room // part * part
    return (window, part) if window >= part else None

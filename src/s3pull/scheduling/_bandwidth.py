"""The bandwidth limit's waiting: one token bucket for every body a client reads.

Every stream of every object takes its bytes from the same
``planning._bandwidth.TokenBucket`` right after a read, and waits what it is
told before it reads again: a body read on a worker thread sleeps on that
thread (it is off the event loop), a body read on the loop awaits
``asyncio.sleep``. Not reading is what slows the server down: the socket's
buffers fill and TCP's flow control holds the sender back.

The wait is never part of the time a stream is judged on for stalls
(``planning._stall`` counts network-wait time only, and the wait happens after
the read returns), so a throttled stream is not a stalled one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..planning import TokenBucket

#: The burst is at least this share of a second's worth of bytes, so that
#: fast streams are not woken for every read.
BURST_SECONDS = 0.1


#: The longest a worker thread sleeps before it looks whether its stream was aborted.
NAP = 0.05


class Throttle:
    """Waits for a client's bandwidth limit.

    Args:
        rate: bytes per second.
        chunk: the largest read a stream makes; the burst is at least one.
        clock: a monotonic clock (injected for tests).
    """

    def __init__(
        self, rate: int, chunk: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.bucket = TokenBucket(rate, max(chunk, rate * BURST_SECONDS))
        self._clock = clock

    async def wait(self, size: int) -> None:
        """Take ``size`` bytes on the event loop, waiting without blocking it."""
        delay = self.bucket.take(size, self._clock())
        if delay > 0:
            await asyncio.sleep(delay)

    def wait_blocking(self, size: int, stop: Callable[[], bool]) -> None:
        """Take ``size`` bytes on a worker thread, which may sleep: it is off the loop.

        The sleep is cut into short naps, and ends early once ``stop()`` says
        the stream was aborted: a cancelled download waits for its reading
        thread, and must not wait out a long share of the limit.
        """
        clock = self._clock
        deadline = clock() + self.bucket.take(size, clock())
        while (left := deadline - clock()) > 0 and not stop():
            time.sleep(min(left, NAP))

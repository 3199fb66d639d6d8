"""Stall detection: body throughput over a sliding window of network-wait time.

A body is judged on the time its reads waited for the network only, so a
busy event loop, a slow disk or the bandwidth limit never looks like a slow
server (the caller adds up those waits and passes the running total). A body
that stops outright is caught by the read timeout instead, which a stall
floor shortens to ``stall_window`` (``Timeouts.silence_s``).
"""

from __future__ import annotations

from .._config import Timeouts
from .._errors import TimeoutError


class StallMeter:
    """Body throughput over a sliding ``stall_window``, in network-wait time.

    The window is kept as ``BUCKETS`` buckets, so a window that began with
    fast bytes cannot excuse a drip after them for long: a stall is seen at
    most one bucket (1/8 window) after it fills a whole window.

    Example:
        >>> meter = StallMeter(Timeouts(stall_window=8, stall_min_rate=100))
        >>> meter.add(0.5, 10_000)  # fast enough
        >>> meter.add(12.0, 10)  # the next bytes, after 11.5 s of waiting
        Traceback (most recent call last):
        ...
        s3pull._errors.TimeoutError: stalled: 0 bytes in the last 8 s (floor 100 bytes/s)
    """

    BUCKETS = 8
    __slots__ = ("_bucket", "_counts", "_current", "_floor", "_span", "_window")

    def __init__(self, timeouts: Timeouts) -> None:
        self._window = timeouts.stall_window
        self._span = timeouts.stall_window / self.BUCKETS
        self._floor = timeouts.stall_min_rate * timeouts.stall_window
        self._counts = [0] * self.BUCKETS
        self._bucket = 0  # index (in time) of the bucket being filled
        self._current = 0  # bytes in it so far

    def add(self, waited: float, size: int) -> None:
        """Count ``size`` bytes that arrived after ``waited`` s of network wait
        in all (the running total since the body began).

        Raises:
            TimeoutError: the whole window before this bucket brought fewer
                bytes than the floor.
        """
        bucket = int(waited / self._span)
        if bucket != self._bucket:
            self._rotate(bucket)
        self._current += size

    def _rotate(self, bucket: int) -> None:
        counts = self._counts
        counts[self._bucket % self.BUCKETS] = self._current
        for skipped in range(self._bucket + 1, min(bucket, self._bucket + self.BUCKETS + 1)):
            counts[skipped % self.BUCKETS] = 0  # buckets no byte arrived in
        self._bucket, self._current = bucket, 0
        # The whole buckets just before this one are exactly one window.
        if self._floor > 0 and bucket >= self.BUCKETS and sum(counts) < self._floor:
            raise TimeoutError(
                f"stalled: {sum(counts)} bytes in the last {self._window:g} s "
                f"(floor {self._floor / self._window:.0f} bytes/s)"
            )

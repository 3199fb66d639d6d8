"""The bandwidth limit's decision: a token bucket that says how long to wait.

Tokens are bytes. The bucket refills at ``rate`` bytes/s up to ``burst``
bytes. A reader that has just received ``n`` bytes takes ``n`` tokens; the
bucket may go into debt, and the answer is how long the reader must wait
until that debt is paid off. Booking the debt at once, instead of refusing
until enough tokens are there, is what keeps many streams that share one
bucket in a fair queue: each later taker waits behind the debt of the ones
before it, so whatever the number of streams, over any window the bytes let
through stay within ``rate * window + burst`` (each take no larger than
``burst``), and a reader that always comes back when told gets the full rate.

The clock is the caller's (``now``), so the decision is tested without
sleeping. A lock makes ``take`` safe from the worker threads that read
bodies beside the event loop.
"""

from __future__ import annotations

import threading


class TokenBucket:
    """Bytes/s with a small burst; ``take`` returns the seconds to wait.

    Args:
        rate: bytes per second, > 0.
        burst: the most bytes let through without waiting after an idle
            spell, > 0.

    Example:
        >>> bucket = TokenBucket(rate=100, burst=100)
        >>> bucket.take(100, now=0.0), bucket.take(50, now=0.0)
        (0.0, 0.5)
    """

    __slots__ = ("_lock", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError(f"rate and burst must be positive, got {rate} and {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)  # may go negative: debt that takers wait out
        self._stamp: float | None = None
        self._lock = threading.Lock()

    def take(self, n: int, now: float) -> float:
        """Take ``n`` bytes' worth at time ``now``; return the seconds to wait
        before they may be used (0.0: at once)."""
        with self._lock:
            if self._stamp is not None and now > self._stamp:
                # An idle bucket fills up to burst, never beyond: no saving up.
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            if self._stamp is None or now > self._stamp:
                self._stamp = now
            self._tokens -= n
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

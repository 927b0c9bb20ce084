"""A circuit breaker for the L2 cache: after repeated failures, skip it for a cool-down, then probe.

States: ``closed`` (use L2), ``open`` (skip L2 until the cool-down ends), ``half_open`` (let one
call through; success closes, failure opens again).
"""

from __future__ import annotations

import threading
import time


class CircuitBreaker:
    """Counts consecutive failures.

    Args:
        threshold: Consecutive failures that open the breaker.
        cooldown_s: Seconds it stays open before one probe is allowed.
        clock: Monotonic clock (tests pass a fake one).
    """

    def __init__(self, threshold: int, cooldown_s: float, clock=time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()
        self.opened_count = 0

    @property
    def failures(self) -> int:
        """Consecutive failures so far (0 after a success)."""
        return self._failures

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open``."""
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go to L2 now (in ``half_open``, only the first caller probes)."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half_open" and not self._probing:
                self._probing = True
                return True
            return False

    def success(self) -> None:
        """A call succeeded: close."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def failure(self) -> None:
        """A call failed: count it; open at the threshold (or again after a failed probe)."""
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.threshold:
                if self._opened_at is None or self._probing:
                    self.opened_count += 1
                self._opened_at = self._clock()
                self._probing = False

"""What a lane asks before it receives: the handler's rate limit and circuit breaker."""

from __future__ import annotations

from ._breaker import Breaker
from ._rate import TokenBucket

__all__ = ["Gate"]


class Gate:
    """Admits receives of a route: tokens from its bucket, leave from its breaker.

    ``longest_wait`` caps each wait a lane is told to make, so that lanes look at
    ``halted`` (and a breaker closed by another lane's probe) at least that often.
    """

    __slots__ = ("breaker", "bucket", "longest_wait")

    def __init__(self, bucket: TokenBucket | None, breaker: Breaker | None, longest_wait: float) -> None:
        self.bucket = bucket
        self.breaker = breaker
        self.longest_wait = longest_wait

    def admit(self, wanted: int) -> tuple[int, float, bool]:
        """``(granted, 0.0, probe)``: receive up to ``granted`` messages now (then call
        :meth:`received`); or ``(0, seconds, False)``: wait, then ask again."""
        probe = False
        if self.breaker is not None:
            wait, probe = self.breaker.admit()
            if wait > 0:
                return 0, min(wait, self.longest_wait), False
            if probe:
                wanted = 1
        if self.bucket is not None:
            taken, wait = self.bucket.take(wanted)
            if not taken:
                if probe:
                    self.breaker.unused()  # type: ignore[union-attr]
                return 0, min(wait, self.longest_wait), False
            wanted = taken
        return wanted, 0.0, probe

    def received(self, granted: int, got: int, probe: bool) -> None:
        """Give back what an admitted receive did not use."""
        if self.bucket is not None:
            self.bucket.give_back(granted - got)
        if probe and not got:
            self.breaker.unused()  # type: ignore[union-attr]

"""What happens to a message whose handler failed: retry with backoff, or dead-letter."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from ..driver import Capabilities
from ..errors import InvalidArgument

__all__ = ["Decision", "DoNotRetry", "FailurePolicy", "failure_summary"]

#: Dead-letter reasons are cut to this many characters (Service Bus caps the reason
#: property; a traceback-sized reason helps nobody in a dead-letter listing).
MAX_REASON = 512


class DoNotRetry(Exception):
    """Raise it (or a subclass) from a handler when retrying cannot help, for example
    for a payload that does not parse: the message goes straight to the dead-letter
    destination with this exception as the reason."""


def failure_summary(error: BaseException) -> str:
    """``"ValueError: bad order id"``, cut to :data:`MAX_REASON` characters."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the runtime does with a failed message."""

    action: Literal["nack", "dead_letter"]
    #: Seconds before redelivery (``nack``).
    delay: float = 0.0
    #: Why it was dead-lettered (``dead_letter``).
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """Retries with exponential backoff and jitter, then the dead-letter destination.

    After the ``n``-th failed delivery (``message.delivery_attempt == n``) the message
    is nacked with a delay of ``initial_delay * multiplier ** (n - 1)`` seconds, capped at
    ``max_delay`` and shortened by a random fraction up to ``jitter``; the delay is also
    capped at what the provider accepts (``limits.max_nack_delay``; 0 where it cannot
    delay a nack). When ``n`` reaches ``max_attempts``, or the handler raised one of
    ``dead_letter_on`` (``DoNotRetry`` always counts), the message is dead-lettered with
    the exception summary as the reason.

    Where the provider cannot count deliveries (``delivery_attempt`` is None, e.g. Pub/Sub
    without a dead-letter policy) every failure counts as the first, so only the
    provider's own redrive setting ends the retries.
    """

    max_attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 300.0
    multiplier: float = 2.0
    jitter: float = 0.2
    dead_letter_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if type(self.max_attempts) is not int or self.max_attempts < 1:
            raise InvalidArgument(f"max_attempts must be a positive int, not {self.max_attempts!r}")
        for name in ("initial_delay", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidArgument(f"{name} must be a number of seconds >= 0, not {value!r}")
        if not self.multiplier >= 1.0:
            raise InvalidArgument(f"multiplier must be >= 1, not {self.multiplier!r}")
        if not 0.0 <= self.jitter <= 1.0:
            raise InvalidArgument(f"jitter must be between 0 and 1, not {self.jitter!r}")
        if not isinstance(self.dead_letter_on, tuple) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in self.dead_letter_on
        ):
            raise InvalidArgument("dead_letter_on must be a tuple of exception classes")

    def delay_for(self, attempt: int) -> float:
        """Backoff after the ``attempt``-th failed delivery, before the provider's cap."""
        exponent = max(0, attempt - 1)
        # Cap the exponent first: 2.0 ** 2000 overflows a float.
        if exponent > 64:
            base = self.max_delay
        else:
            base = min(self.max_delay, self.initial_delay * self.multiplier**exponent)
        return base * (1.0 - self.jitter * random.random())

    def decide(self, error: BaseException, attempt: int | None, capabilities: Capabilities) -> Decision:
        if isinstance(error, (DoNotRetry, *self.dead_letter_on)):
            return Decision("dead_letter", reason=failure_summary(error))
        if attempt is not None and attempt >= self.max_attempts:
            return Decision(
                "dead_letter", reason=f"failed {attempt} times; last: {failure_summary(error)}"
            )
        if not capabilities.nack_delay:
            return Decision("nack")
        cap = capabilities.limits.max_nack_delay or 0.0
        return Decision("nack", delay=min(cap, self.delay_for(attempt or 1)))

"""The handler lock is first come, first served: a settlement waiting for the
receiver is not starved by a receive loop that takes the lock straight back."""

from __future__ import annotations

import threading
import time

import pytest

from cloudqueue_azure_servicebus._handlers import FairLock


def test_a_waiter_goes_before_a_thread_that_releases_and_asks_again() -> None:
    lock = FairLock()
    order: list[str] = []

    def settle() -> None:
        with lock:
            order.append("waiting settlement")

    lock.__enter__()  # a receive call holds the receiver
    settlement = threading.Thread(target=settle)
    settlement.start()
    while lock._next_ticket < 2:  # until the settlement is queued for the lock
        time.sleep(0.001)
    lock.__exit__(None, None, None)
    with lock:  # the receive loop's next call, straight away
        order.append("next receive")
    settlement.join()
    assert order == ["waiting settlement", "next receive"]


def test_an_interrupted_waiter_does_not_block_the_ones_after_it() -> None:
    lock = FairLock()
    lock.__enter__()
    interrupted = threading.Thread(target=_wait_and_give_up, args=(lock,))
    interrupted.start()
    interrupted.join()
    got_it = threading.Event()

    def next_waiter() -> None:
        with lock:
            got_it.set()

    waiter = threading.Thread(target=next_waiter)
    waiter.start()
    lock.__exit__(None, None, None)
    waiter.join(5)
    assert got_it.is_set()


def _wait_and_give_up(lock: FairLock) -> None:
    """Ask for the lock and be interrupted while waiting for it."""

    class Interrupted(Exception):
        pass

    condition = lock._turn_changed
    real_wait = condition.wait

    def interrupted_wait(timeout: float | None = None) -> bool:
        condition.wait = real_wait  # type: ignore[method-assign]
        raise Interrupted

    condition.wait = interrupted_wait  # type: ignore[method-assign]
    with pytest.raises(Interrupted), lock:
        pass

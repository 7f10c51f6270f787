"""The SQLite provider's ids come from a private generator: an application seeding the
``random`` module cannot make them repeat, and a forked child does not share its parent's
sequence (both would write ids into one file)."""

from __future__ import annotations

import os
import random

from cloudqueue.providers._sqlite.store import new_lease_id, new_message_ids


def _draw() -> tuple[str, int]:
    return next(new_message_ids()), new_lease_id()


def test_seeding_the_random_module_does_not_repeat_ids() -> None:
    random.seed(0)
    first = _draw()
    random.seed(0)
    second = _draw()
    assert first[0] != second[0]
    assert first[1] != second[1]


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids, then leave without running pytest's exit
        try:
            message_id, lease_id = _draw()
            os.write(writing, f"{message_id} {lease_id}".encode())
        finally:
            os._exit(0)
    os.close(writing)
    parent = _draw()
    with os.fdopen(reading) as pipe:
        child_id, child_lease = pipe.read().split()
    os.waitpid(pid, 0)
    assert child_id != parent[0]
    assert int(child_lease) != parent[1]

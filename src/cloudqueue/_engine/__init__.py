"""The portable layer's logic, written once for the sync and asyncio APIs.

Operations are generators that *yield effects* (:mod:`.effects`) instead of
doing I/O: call a driver method, sleep, wait for a state change, wake waiters.
Two small runners perform the effects, one blocking (:class:`.effects.SyncRunner`)
and one with asyncio (:class:`.effects.AsyncRunner`). The generator code runs
under the runner's lock, so the engine's state needs no locking of its own.
"""

"""
Holds a transaction's changed keys until it commits, one broadcast per key.

A callback per (key, savepoint) goes to on_commit, so a savepoint that rolls back takes
exactly its own keys with it; at commit, a key named in several savepoints is sent once.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from django.db import transaction

from streaming.publish.publisher import publisher
from streaming.registry import AllKeys

_REGISTERED = "_streaming_registered"
_RUN = "_streaming_run"


def schedule(stream: str, keys: Iterable[str | AllKeys], using: str) -> None:
    """Broadcasts `keys` of `stream` once the current transaction on `using` commits."""
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        # Autocommit: the write is already committed.
        publisher.enqueue([(stream, key, using) for key in keys])
        return
    # The pending-callbacks list is replaced on commit, rollback and savepoint rollback,
    # so its identity tells whether what we registered earlier is still pending.
    pending = connection.run_on_commit
    state = getattr(connection, _REGISTERED, None)
    if state is None or state[0] is not pending:
        state = (pending, set[tuple[str, "str | AllKeys", tuple[str, ...]]]())
        setattr(connection, _REGISTERED, state)
    context = tuple(connection.savepoint_ids)
    for key in keys:
        if (stream, key, context) in state[1]:
            continue
        state[1].add((stream, key, context))
        # robust: nothing after commit may make the caller's save() raise.
        transaction.on_commit(partial(_committed, stream, key, using), using=using, robust=True)


def _committed(stream: str, key: str | AllKeys, using: str) -> None:
    """Called after commit: hands the key to the publisher unless this commit already did."""
    connection = transaction.get_connection(using)
    # While one commit's callbacks run, run_on_commit is the fresh list made for the next
    # transaction: it identifies this run.
    run = connection.run_on_commit
    state = getattr(connection, _RUN, None)
    if state is None or state[0] is not run:
        state = (run, set[tuple[str, "str | AllKeys"]]())
        setattr(connection, _RUN, state)
    if (stream, key) in state[1]:
        return
    state[1].add((stream, key))
    publisher.enqueue([(stream, key, using)])

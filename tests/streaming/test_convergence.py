"""
The core promise, across processes: 4 writer processes make random creates, updates,
moves, deletes, bulk writes, rolled-back savepoints and writes through the database driver
(no Django) over three keys at once, and a fifth is SIGKILLed mid-run, while 10 subscribers
of a daphne server watch through Redis. Two seconds after the writers exit,
every subscriber holds exactly the selector's output for every key, and no subscriber ever
saw a key's version go backwards. bench/stress.py runs the same at 1,000 writes per writer.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from bench.stress import run, setup_series
from tests.support.processes import process_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


async def test_subscribers_converge_on_the_database_after_concurrent_writers(daphne, use_redis):
    """Tests that 10 subscribers end equal to the database after 4 writers x 100 writes."""
    await sync_to_async(setup_series)()
    figures = await run(
        daphne.ws_url, process_env(use_redis), writers=4, writes=100, subscribers=10, quiet=2.0
    )
    assert figures.writes == 400
    assert figures.mismatches == []
    assert figures.regressions == []
    # Every committed write reached every subscriber, as that write or a later state.
    assert figures.unmatched == 0, figures.unmatched_writes
    assert figures.messages > 0

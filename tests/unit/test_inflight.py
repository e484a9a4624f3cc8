"""Turns in flight (store/inflight.py): a turn whose replica stopped beating is reported once to its owner, a turn on a
live replica or on this one never is, and a turn that ended leaves nothing behind."""
from __future__ import annotations

import time

from config.database import database_engine
from store.inflight import TurnsInFlight


def test_a_dead_replicas_turn_is_reported_once_to_its_owner_only(tmp_path):
    engine = database_engine(None, tmp_path, "conversations.db")
    dying = TurnsInFlight(engine, beat=0.05, dead_after=0.3)
    alive = TurnsInFlight(engine, beat=0.05, dead_after=0.3)
    dying.begin("ada", "t1", "conv-1", "what was being answered")
    ended = dying.begin("ada", "t1", "conv-1", "already answered")
    dying.end(ended)
    alive.begin("ada", "t1", "conv-2", "still running elsewhere")

    # Right after: the other replica still beats, so nothing is interrupted yet; but there is something to watch.
    found, elsewhere = alive.pending("ada", "t1")
    assert found == [] and elsewhere
    dying._stop.set()  # the replica dies: no clean close, its heartbeat just stops
    dying._thread.join(1)
    time.sleep(0.5)
    assert alive.pending("grace", "t1") == ([], False)  # another person sees nothing
    found, elsewhere = alive.pending("ada", "t1")
    assert [(f.conversation_id, f.question) for f in found] == [("conv-1", "what was being answered")]
    assert not elsewhere  # ada's other turn runs on this very replica: nothing to watch
    assert alive.pending("ada", "t1") == ([], False)  # reported once
    # Seen from a third replica, the live one's turn is neither interrupted nor forgotten.
    third = TurnsInFlight(engine, beat=0.05, dead_after=0.3)
    assert third.pending("ada", "t1") == ([], True)
    alive.close()
    third.close()

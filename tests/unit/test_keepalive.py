"""The keepalive schedule: ping after a quiet interval, give up on a ping nothing answered."""

from __future__ import annotations

import pytest

from liveactors import ConnectionLost
from liveactors._keepalive import Keepalive


def test_the_first_ping_is_due_one_interval_after_the_last_bytes() -> None:
    keepalive = Keepalive(30.0, 90.0)
    assert keepalive.due(last_received=100.0, reads=5) == 130.0
    # More bytes push it back.
    assert keepalive.due(last_received=120.0, reads=6) == 150.0


def test_an_unanswered_ping_is_fatal_at_its_timeout() -> None:
    keepalive = Keepalive(30.0, 90.0)
    keepalive.act(now=130.0, reads=5)  # the ping goes out
    assert keepalive.due(last_received=100.0, reads=5) == 220.0
    with pytest.raises(ConnectionLost, match=r"keepalive ping within 90s"):
        keepalive.act(now=220.0, reads=5)


def test_anything_arriving_after_a_ping_answers_it() -> None:
    keepalive = Keepalive(30.0, 90.0)
    keepalive.act(now=130.0, reads=5)
    # A pong (or any frame) at 130.2: the next ping is one interval after it, not a failure.
    assert keepalive.due(last_received=130.2, reads=6) == pytest.approx(160.2)
    keepalive.act(now=160.2, reads=6)  # a new ping, no error
    assert keepalive.due(last_received=130.2, reads=6) == pytest.approx(250.2)


def test_a_held_up_reader_excuses_the_silence() -> None:
    keepalive = Keepalive(30.0, 90.0)
    keepalive.act(now=130.0, reads=5)  # a ping nobody could read the answer to
    keepalive.excuse(now=220.0)
    # Not given up: the next ping is one interval after the excuse, the old silence forgiven.
    assert keepalive.due(last_received=100.0, reads=5) == 250.0
    keepalive.act(now=250.0, reads=5)  # a new ping, no error
    with pytest.raises(ConnectionLost):
        keepalive.act(now=340.0, reads=5)

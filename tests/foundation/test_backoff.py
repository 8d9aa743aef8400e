"""The one reconnect backoff of cameras, supervised tasks, the MQTT link and the clients."""

from __future__ import annotations

import random

import pytest

from server.backoff import Backoff, backoff_delay


def test_delay_doubles_up_to_the_cap_with_equal_jitter() -> None:
    rng = random.Random(7)
    for attempt in range(64):
        ceiling = min(10.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= backoff_delay(attempt, 0.5, 10.0, rng) <= ceiling
    spread = {round(backoff_delay(6, 0.5, 10.0, rng), 6) for _ in range(50)}
    assert len(spread) > 40  # jittered, not lock-step
    assert max(spread) <= 10.0


def test_a_huge_attempt_number_stays_at_the_cap() -> None:
    assert 5.0 <= backoff_delay(10_000, 0.5, 10.0) <= 10.0


def test_backoff_grows_is_capped_and_resets() -> None:
    backoff = Backoff(first=0.5, cap=3.0)
    delays = [backoff.next() for _ in range(12)]
    assert 0.25 <= delays[0] <= 0.5
    assert 0.5 <= delays[1] <= 1.0
    assert all(1.5 <= d <= 3.0 for d in delays[4:])
    assert len({round(d, 6) for d in delays[4:]}) > 1
    assert backoff.attempt == 12
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next() <= 0.5


def test_an_attempt_that_ran_the_stable_time_starts_the_delays_again() -> None:
    backoff = Backoff(first=1.0, cap=100.0)
    for _ in range(5):
        backoff.next()
    assert 16.0 <= backoff.next_after(9.99, stable=10.0) <= 32.0  # too short: keeps growing
    assert 32.0 <= backoff.next_after(None, stable=10.0) <= 64.0  # never got going
    assert backoff.attempt == 7
    assert 0.5 <= backoff.next_after(10.0, stable=10.0) <= 1.0  # stable: from the shortest
    assert backoff.attempt == 1
    assert 0.5 <= backoff.next_after(60.0, stable=10.0) <= 1.0


def test_same_seed_same_delays() -> None:
    first = Backoff(first=0.5, cap=10.0, rng=random.Random(3))
    second = Backoff(first=0.5, cap=10.0, rng=random.Random(3))
    assert [first.next() for _ in range(8)] == [second.next() for _ in range(8)]


def test_a_first_delay_above_the_cap_waits_the_cap() -> None:
    """mqtt.reconnect_min may be set above reconnect_max; the cap wins, as it always did."""
    backoff = Backoff(first=20.0, cap=10.0)
    assert all(5.0 <= backoff.next() <= 10.0 for _ in range(5))


@pytest.mark.parametrize(("first", "cap"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 5.0)])
def test_delays_must_be_positive(first: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff delays must be positive"):
        Backoff(first=first, cap=cap)

"""The event state machine, driven with plain timestamps."""

from __future__ import annotations

import itertools

import pytest

from server.config import EventSettings
from server.events import EventTracker, Observation, Transition
from server.ids import UlidGenerator, id_time, is_ulid

FPS = 10.0


def tracker(min_frames: int = 3, off_delay: float = 2.0, max_length: float = 60.0) -> EventTracker:
    t = EventTracker(
        "cam1",
        EventSettings(min_frames=min_frames, off_delay=off_delay, max_length=max_length),
        UlidGenerator().new,
    )
    t.configure(t._settings, ["door", "yard"])
    return t


def feed(
    t: EventTracker, start: float, frames: int, mono: float | None = None, **kw: object
) -> list[Transition]:
    """``frames`` observations at FPS from wall time ``start``; with ``mono``, their
    monotonic times run from it, apart from the wall times."""
    out: list[Transition] = []
    for i in range(frames):
        if mono is not None:
            kw["mono"] = mono + i / FPS
        out += t.observe(Observation(ts=start + i / FPS, **kw))  # type: ignore[arg-type]
    return out


def test_starts_after_min_frames_and_ends_after_off_delay() -> None:
    t = tracker(min_frames=3, off_delay=2.0)
    assert feed(t, 100.0, 2, motion=True, score=0.1) == []
    out = feed(t, 100.2, 1, motion=True, score=0.1)
    assert [o.kind for o in out] == ["start"]
    ev = out[0].event
    assert ev.start.timestamp() == pytest.approx(100.0)
    assert out[0].snapshot == "start"
    feed(t, 100.3, 7, motion=True, score=0.05)  # last motion at 100.9
    assert t.active
    # 1.9 s of stillness is not enough...
    assert feed(t, 101.0, 19, motion=False) == []
    # ...2.0 s is.
    out = feed(t, 102.9, 1, motion=False)
    assert [o.kind for o in out] == ["end"]
    assert out[0].event.end is not None
    assert out[0].event.end.timestamp() == pytest.approx(100.9)
    assert out[0].event.id == ev.id
    assert not out[0].event.interrupted
    assert not t.active


def test_interrupted_runs_do_not_start() -> None:
    t = tracker(min_frames=3)
    for i in range(20):
        motion = i % 3 != 2  # two motion frames, then one still, forever
        assert t.observe(Observation(ts=i / FPS, motion=motion, score=0.1)) == []


def test_peak_is_tracked_and_announced_at_most_once_a_second() -> None:
    t = tracker(min_frames=1)
    scores = [0.1 + 0.01 * i for i in range(30)]  # rising for 3 s
    out: list[Transition] = []
    for i, s in enumerate(scores):
        out += t.observe(Observation(ts=i / FPS, motion=True, score=s, boxes=[(0, 0, s, s)]))
    updates = [o for o in out if o.kind == "update"]
    assert 2 <= len(updates) <= 3
    assert all(u.snapshot == "peak" for u in updates)
    assert t.current is not None
    assert t.current.peak_score == pytest.approx(scores[-1])
    assert t.current.boxes == [(0, 0, scores[-1], scores[-1])]


def test_zones_debounce_like_the_camera() -> None:
    t = tracker(min_frames=2, off_delay=1.0)
    out = feed(t, 0.0, 2, motion=True, score=0.2, zones={"door": True, "yard": False})
    assert [o.kind for o in out] == ["start"]
    assert out[0].event.zones == ["door"]
    assert t.active_zones == ["door"]
    # One yard frame is not enough, two are: an update naming the new zone.
    assert feed(t, 0.2, 1, motion=True, score=0.2, zones={"yard": True}) == []
    out = feed(t, 0.3, 1, motion=True, score=0.2, zones={"yard": True})
    assert [o.kind for o in out] == ["update"]
    assert out[0].event.zones == ["door", "yard"]
    assert t.zones_changed
    # door has been quiet since 0.1: off at 1.1 while the camera still sees motion.
    feed(t, 0.4, 8, motion=True, score=0.2, zones={"yard": True})
    assert t.active_zones == ["yard"]
    assert t.current is not None
    assert t.current.zones == ["door", "yard"]


def test_max_length_splits_a_long_event() -> None:
    t = tracker(min_frames=3, max_length=10.0)
    out = feed(t, 0.0, 150, motion=True, score=0.1)  # 15 s of motion
    kinds = [o.kind for o in out if o.kind != "update"]
    assert kinds == ["start", "end", "start"]
    first, second = out[0].event, [o for o in out if o.kind == "start"][1].event
    assert second.id > first.id
    assert second.start.timestamp() == pytest.approx(10.0)


def test_tick_ends_an_event_of_a_silent_camera_and_close_marks_interrupted() -> None:
    t = tracker(min_frames=1, off_delay=2.0)
    feed(t, 0.0, 1, motion=True, score=0.3, zones={"door": True})
    assert t.tick(1.5) == []
    (end,) = t.tick(2.5)
    assert end.kind == "end"
    assert t.active_zones == []
    feed(t, 10.0, 1, motion=True, score=0.3)
    closed = t.close(11.0, interrupted=True)
    assert closed is not None
    assert closed.event.interrupted
    assert closed.event.end is not None
    assert closed.event.end.timestamp() == pytest.approx(11.0)
    assert t.close(12.0) is None


def test_a_wall_clock_stepped_back_neither_holds_an_event_open_nor_splits_it() -> None:
    t = tracker(min_frames=1, off_delay=2.0, max_length=10.0)
    (start,) = feed(t, 5000.0, 1, mono=100.0, motion=True, score=0.2)
    feed(t, 5000.1, 9, mono=100.1, motion=True, score=0.1)  # last motion: 5000.9 / 100.9
    # The wall clock is stepped back an hour (NTP, a manual change); the monotonic one goes on.
    assert feed(t, 1400.0, 19, mono=101.0, motion=False) == []
    (end,) = feed(t, 1401.9, 1, mono=102.9, motion=False)
    assert end.kind == "end"
    assert end.event.id == start.event.id
    assert end.event.end is not None
    assert end.event.end.timestamp() == pytest.approx(5000.9)  # the last motion frame's time
    # Time passing without frames is measured the same way.
    feed(t, 1500.0, 1, mono=200.0, motion=True, score=0.2)
    assert t.tick(201.5) == []
    (end,) = t.tick(202.0)
    assert end.kind == "end"
    # A wall clock stepped forward an hour splits nothing: 5 s of motion is under max_length.
    out = feed(t, 2000.0, 20, mono=300.0, motion=True, score=0.1)
    out += feed(t, 5602.0, 30, mono=302.0, motion=True, score=0.1)
    assert [o.kind for o in out if o.kind != "update"] == ["start"]


def test_reconfigure_drops_removed_zones_and_applies_rules() -> None:
    t = tracker(min_frames=5)
    t.configure(EventSettings(min_frames=1, off_delay=0.0), ["yard"])
    out = feed(t, 0.0, 1, motion=True, score=0.1, zones={"door": True, "yard": True})
    assert out[0].event.zones == ["yard"]
    assert [o.kind for o in feed(t, 0.1, 1, motion=False)] == ["end"]


def test_ids_are_sortable_unique_and_carry_time() -> None:
    gen = UlidGenerator()
    ids = [gen.new(1_700_000_000.123) for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert ids == sorted(ids)
    assert all(is_ulid(i) for i in ids)
    assert not is_ulid(ids[0] + "\n")  # "$" alone would match before a final newline
    assert id_time(ids[0]) == pytest.approx(1_700_000_000.123)
    # A clock step back still yields a larger id.
    later, earlier = gen.new(2_000_000_000.0), gen.new(1_000_000_000.0)
    assert earlier > later
    assert all(a < b for a, b in itertools.pairwise(ids))

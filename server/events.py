"""Turning per-frame motion into events: a pure state machine, no I/O, no clock of its own.

Rules (the same for the whole camera and for each zone):

- **start**: ``min_frames`` consecutive motion frames. The event's ``start`` is the capture time
  of the first frame of that run.
- **end**: ``off_delay`` seconds with no motion frame. The event's ``end`` is the time of the
  last motion frame. Time passing without frames at all (a camera that went offline) counts as
  no motion; the pipeline reports it with :meth:`EventTracker.tick`.
- **split**: an event longer than ``max_length`` ends and, if motion goes on, a new one starts
  at once.
- **while open**: the event records the zones whose own debounced state switched on, the peak
  score and the boxes of the peak frame. An update is emitted when a zone is entered, and when
  the peak rises, at most once per ``update_interval``; such a peak update asks for a new best
  snapshot.

The event's times (``start``, ``end``) are the frames' capture times (Unix seconds). Durations
(``off_delay``, ``max_length``, the update interval) are measured on the frames' monotonic
clock when given (``Observation.mono``, and :meth:`EventTracker.tick`'s time), so a wall clock
stepped back (NTP, a manual change) neither holds an event open nor splits one. Without it
both are the one number, so tests drive the tracker with plain numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from server.config import EventSettings
from server.messages import Box, Event

__all__ = ["Debounce", "EventTracker", "Instant", "Observation", "Transition", "utc"]

PEAK_UPDATE_INTERVAL = 1.0
"""Seconds between peak updates (and best-snapshot captures) of one event."""


def utc(ts: float) -> datetime:
    """A Unix time as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)


@dataclass(frozen=True)
class Observation:
    """One analysed frame: ``ts`` its capture time (Unix seconds), ``mono`` the same instant
    on a monotonic clock (None: ``ts``)."""

    ts: float
    motion: bool
    score: float = 0.0
    boxes: Sequence[Box] = ()
    zones: dict[str, bool] = field(default_factory=dict)
    mono: float | None = None

    @property
    def at(self) -> float:
        """The time durations are measured with."""
        return self.ts if self.mono is None else self.mono


@dataclass(frozen=True)
class Transition:
    """Something happened to the event: it started, changed or ended.

    ``snapshot`` asks the caller to capture a frame now (``"start"`` or ``"peak"``).
    """

    kind: Literal["start", "update", "end"]
    event: Event
    snapshot: Literal["start", "peak"] | None = None


class Instant(NamedTuple):
    """One frame's instant: ``ts`` its capture time, ``at`` on the clock durations are
    measured with."""

    ts: float
    at: float


class Debounce:
    """One on/off state with the start and end rules above.

    ``run_start`` (the first frame of the motion run, an event's start) and ``last_motion``
    (an event's end) are instants.
    """

    def __init__(self, min_frames: int, off_delay: float) -> None:
        self.min_frames = min_frames
        self.off_delay = off_delay
        self.on = False
        self.run = 0
        self.run_start = Instant(0.0, 0.0)
        self.last_motion = Instant(0.0, 0.0)

    def step(self, ts: float, motion: bool, at: float | None = None) -> bool:
        """Feed one frame captured at ``ts`` (``at`` on the duration clock, default ``ts``);
        returns whether the state flipped."""
        now = Instant(ts, ts if at is None else at)
        if motion:
            if self.run == 0:
                self.run_start = now
            self.run += 1
            self.last_motion = now
            if not self.on and self.run >= self.min_frames:
                self.on = True
                return True
            return False
        self.run = 0
        return self.tick(now.at)

    def tick(self, at: float) -> bool:
        """Time passed with no motion frame (``at`` on the duration clock); returns whether
        the state switched off."""
        if self.on and at - self.last_motion.at >= self.off_delay:
            self.on = False
            self.run = 0
            return True
        return False

    def force_off(self) -> None:
        """Switch off without waiting (the event it belongs to ended)."""
        self.on = False
        self.run = 0


class EventTracker:
    """The event state of one camera."""

    def __init__(
        self,
        camera: str,
        settings: EventSettings,
        new_id: Callable[[float], str],
        update_interval: float = PEAK_UPDATE_INTERVAL,
    ) -> None:
        self.camera = camera
        self._settings = settings
        self._new_id = new_id
        self._update_interval = update_interval
        self._motion = Debounce(settings.min_frames, settings.off_delay)
        self._zones: dict[str, Debounce] = {}
        self._event: Event | None = None
        self._started_at = 0.0
        """The open event's start on the duration clock."""
        self._last_peak_update = 0.0
        self.zones_changed = False
        """Set when a zone's debounced state flipped during the last call; the caller resets it."""

    # -- state -------------------------------------------------------------------------------

    @property
    def current(self) -> Event | None:
        """The open event, if any."""
        return self._event

    @property
    def active(self) -> bool:
        """Whether an event is open (the debounced camera motion state)."""
        return self._event is not None

    @property
    def active_zones(self) -> list[str]:
        """Zones whose debounced state is on."""
        return [name for name, d in self._zones.items() if d.on]

    def configure(self, settings: EventSettings, zones: Sequence[str]) -> None:
        """Apply new rules and the current zone names (states of removed zones are dropped)."""
        self._settings = settings
        for d in [self._motion, *self._zones.values()]:
            d.min_frames, d.off_delay = settings.min_frames, settings.off_delay
        self._zones = {
            z: self._zones.get(z) or Debounce(settings.min_frames, settings.off_delay)
            for z in zones
        }

    def mark_snapshot(self) -> Event | None:
        """Record that the open event has a stored snapshot; returns the updated event."""
        if self._event is None or self._event.has_snapshot:
            return None
        self._event = self._event.model_copy(update={"has_snapshot": True})
        return self._event

    # -- input -------------------------------------------------------------------------------

    def observe(self, obs: Observation) -> list[Transition]:
        """Feed one analysed frame; returns what happened, in order."""
        self.zones_changed = False
        out: list[Transition] = []
        ev = self._event
        at = obs.at
        if ev is not None and at - self._started_at >= self._settings.max_length:
            # A split: end this one; if motion goes on, the next one starts with this frame.
            out.append(self._end(self._motion.last_motion.ts, interrupted=False))
            self._motion.force_off()
            self._motion.run = self._motion.min_frames - 1 if obs.motion else 0
            self._motion.run_start = Instant(obs.ts, at)
        flipped = self._motion.step(obs.ts, obs.motion, at)
        entered = self._step_zones(obs)
        if flipped and self._motion.on:
            start, self._started_at = self._motion.run_start
            self._event = Event(
                id=self._new_id(start),
                camera=self.camera,
                zones=[z for z in entered],
                start=utc(start),
                peak_score=_clamp(obs.score),
                boxes=list(obs.boxes),
            )
            self._last_peak_update = at
            out.append(Transition("start", self._event, snapshot="start"))
        elif flipped:
            out.append(self._end(self._motion.last_motion.ts, interrupted=False))
        elif self._event is not None:
            out.extend(self._update(obs, entered))
        return out

    def tick(self, at: float) -> list[Transition]:
        """Time passed without a frame (now is ``at``, on the clock durations are measured
        with: the monotonic one in the server); ends the event once ``off_delay`` has
        elapsed."""
        self.zones_changed = False
        for d in self._zones.values():
            if d.tick(at):
                self.zones_changed = True
        if self._motion.tick(at) and self._event is not None:
            return [self._end(self._motion.last_motion.ts, interrupted=False)]
        return []

    def close(self, ts: float, interrupted: bool = True) -> Transition | None:
        """End the open event now (shutdown, camera removed or reconfigured)."""
        if self._event is None:
            return None
        self._motion.force_off()
        return self._end(max(ts, self._event.start.timestamp()), interrupted=interrupted)

    # -- internals ---------------------------------------------------------------------------

    def _step_zones(self, obs: Observation) -> list[str]:
        entered = []
        for name, d in self._zones.items():
            if d.step(obs.ts, bool(obs.zones.get(name, False)), obs.at):
                self.zones_changed = True
                if d.on:
                    entered.append(name)
        return entered

    def _update(self, obs: Observation, entered: list[str]) -> list[Transition]:
        ev = self._event
        assert ev is not None
        changes: dict[str, object] = {}
        new_zones = [z for z in entered if z not in ev.zones]
        if new_zones:
            changes["zones"] = [*ev.zones, *new_zones]
        snapshot: Literal["peak"] | None = None
        score = _clamp(obs.score)
        if score > ev.peak_score:
            changes["peak_score"] = score
            changes["boxes"] = list(obs.boxes)
            # The peak is always recorded; it is announced (with a new best snapshot of this
            # very frame) at most once per interval so a rising score cannot flood clients.
            if obs.at - self._last_peak_update >= self._update_interval:
                snapshot = "peak"
                self._last_peak_update = obs.at
        if not changes:
            return []
        self._event = ev.model_copy(update=changes)
        if snapshot is None and not new_zones:
            return []
        return [Transition("update", self._event, snapshot=snapshot)]

    def _end(self, end_ts: float, interrupted: bool) -> Transition:
        ev = self._event
        assert ev is not None
        for d in self._zones.values():
            if d.on:
                self.zones_changed = True
            d.force_off()
        end = utc(max(end_ts, ev.start.timestamp()))
        self._event = None
        return Transition("end", ev.model_copy(update={"end": end, "interrupted": interrupted}))


def _clamp(score: float) -> float:
    return min(1.0, max(0.0, float(score)))

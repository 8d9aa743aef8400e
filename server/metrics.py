"""Prometheus metrics, in a registry owned by one app (so tests can run several apps).

Per-camera values are read from the live cameras at scrape time by a custom collector:
there is no per-camera state to keep in sync, and a deleted camera's series disappear
with it. Labels are camera ids only, never URLs.

The front ends report through :meth:`Metrics.set_websocket_clients` and
:meth:`Metrics.set_mqtt_connected`, and may register their own metrics on
:attr:`Metrics.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from server.redact import redact_text

__all__ = ["CONTENT_TYPE", "CameraSample", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Detection on the working-size frame takes well under a millisecond; the buckets resolve that.
_DETECT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


@dataclass(frozen=True)
class CameraSample:
    """One camera's counters at scrape time."""

    camera: str
    up: bool
    processed: int
    dropped: int
    reconnects: int
    events: int
    bad_frames: int = 0


class _CameraCollector(Collector):
    def __init__(self, source: Callable[[], Iterable[CameraSample]]) -> None:
        self._source = source

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        samples = list(self._source())
        families: list[tuple[str, str, Callable[[CameraSample], float], bool]] = [
            ("motionhub_frames_processed", "Frames analysed by the detector.",
             lambda s: s.processed, True),
            ("motionhub_frames_dropped", "Frames the pipeline could not take in time.",
             lambda s: s.dropped, True),
            ("motionhub_frames_bad", "Corrupt or truncated frames (or garbage) skipped.",
             lambda s: s.bad_frames, True),
            ("motionhub_camera_reconnects", "Reconnections to the camera.",
             lambda s: s.reconnects, True),
            ("motionhub_events", "Motion events started.", lambda s: s.events, True),
            ("motionhub_camera_up", "1 when the camera delivers frames.",
             lambda s: float(s.up), False),
        ]  # fmt: skip
        for name, doc, value, is_counter in families:
            fam: CounterMetricFamily | GaugeMetricFamily
            if is_counter:
                fam = CounterMetricFamily(name, doc, labels=["camera"])
            else:
                fam = GaugeMetricFamily(name, doc, labels=["camera"])
            for s in samples:
                fam.add_metric([s.camera], value(s))
            yield fam

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        return iter(())


class _StorageCollector(Collector):
    def __init__(self, ok: Callable[[], bool], lost_events: Callable[[], int]) -> None:
        self._ok = ok
        self._lost_events = lost_events

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "motionhub_storage_writable",
            "1 when storage takes writes: the last snapshot write succeeded, and so did the"
            " last database write, with no refused events still held to write again.",
            value=1.0 if self._ok() else 0.0,
        )
        yield CounterMetricFamily(
            "motionhub_storage_lost_events",
            "Events given up on while the database refused writes, past the most it holds"
            " to write again (the oldest are dropped).",
            value=self._lost_events(),
        )

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        return iter(())


class Metrics:
    """Every metric of one app."""

    def __init__(
        self,
        cameras: Callable[[], Iterable[CameraSample]],
        storage_ok: Callable[[], bool] = lambda: True,
        lost_events: Callable[[], int] = lambda: 0,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_CameraCollector(cameras))
        self.registry.register(_StorageCollector(storage_ok, lost_events))
        self.detect_seconds = Histogram(
            "motionhub_detect_seconds",
            "Time spent in the motion detector per analysed frame.",
            buckets=_DETECT_BUCKETS,
            registry=self.registry,
        )
        self.websocket_clients = Gauge(
            "motionhub_websocket_clients", "Connected WebSocket clients.", registry=self.registry
        )
        self.mqtt_connected = Gauge(
            "motionhub_mqtt_connected",
            "1 while connected to the MQTT broker (0 when MQTT is off).",
            registry=self.registry,
        )
        self.storage_errors = Counter(
            "motionhub_storage_errors",
            "Storage write failures by kind: db counts outages (database writes that start"
            " failing; the held events written again and refused during the same outage do"
            " not count again), snapshot counts each snapshot that could not be written.",
            ["kind"],
            registry=self.registry,
        )
        for kind in ("db", "snapshot"):
            self.storage_errors.labels(kind=kind)
        self._ws_clients = 0
        self._mqtt_connected = False
        self.mqtt_error: str | None = None

    def set_websocket_clients(self, count: int) -> None:
        """Report the number of connected WebSocket clients."""
        self._ws_clients = count
        self.websocket_clients.set(count)

    @property
    def websocket_client_count(self) -> int:
        """The last reported WebSocket client count."""
        return self._ws_clients

    def set_mqtt_connected(self, connected: bool) -> None:
        """Report the MQTT connection state (read by ``/readyz``)."""
        self._mqtt_connected = connected
        self.mqtt_connected.set(1 if connected else 0)

    @property
    def is_mqtt_connected(self) -> bool:
        """The last reported MQTT connection state."""
        return self._mqtt_connected

    def set_mqtt_error(self, error: str | None) -> None:
        """Report why the MQTT link is down (None while it is up; read by ``/api/status``),
        with any configured secret masked."""
        self.mqtt_error = None if error is None else redact_text(error)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

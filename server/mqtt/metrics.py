"""Prometheus metrics of the MQTT front end, read from the live service on each scrape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.mqtt.link import LinkState

if TYPE_CHECKING:
    from server.mqtt.service import MqttService

__all__ = ["MqttCollector"]


class MqttCollector(Collector):
    """Register with ``registry.register(MqttCollector(service))``.

    ``motionhub_mqtt_connected`` itself belongs to the server's metrics, fed through
    the service's ``on_connected`` callback; this adds the details.
    """

    def __init__(self, service: MqttService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        """One sample of every MQTT metric."""
        svc = self._service
        link = svc.link
        state = GaugeMetricFamily(
            "motionhub_mqtt_state",
            "The MQTT link's state (1 for the current one).",
            labels=["state"],
        )
        for s in LinkState:
            state.add_metric([s.value], 1.0 if link.state is s else 0.0)
        yield state
        yield CounterMetricFamily(
            "motionhub_mqtt_reconnects", "Connections made after the first.", value=link.reconnects
        )
        yield CounterMetricFamily(
            "motionhub_mqtt_connection_failures",
            "Failed connection attempts and lost connections.",
            value=link.failures,
        )
        yield GaugeMetricFamily(
            "motionhub_mqtt_outbox_pending",
            "Event messages waiting for the broker's acknowledgement.",
            value=len(svc.outbox),
        )
        yield CounterMetricFamily(
            "motionhub_mqtt_outbox_dropped",
            "Event messages dropped because the outbox was full.",
            value=svc.outbox.dropped,
        )
        yield CounterMetricFamily(
            "motionhub_mqtt_outbox_write_errors",
            "Failed writes of the outbox database (messages stay in memory).",
            value=svc.outbox.write_errors,
        )
        published = CounterMetricFamily(
            "motionhub_mqtt_published", "Messages acknowledged by the broker.", labels=["kind"]
        )
        published.add_metric(["event"], svc.events_published)
        published.add_metric(["state"], svc.states_published)
        yield published
        commands = CounterMetricFamily(
            "motionhub_mqtt_commands", "Commands received over MQTT.", labels=["result"]
        )
        commands.add_metric(["applied"], svc.commands_applied)
        commands.add_metric(["rejected"], svc.commands_rejected)
        yield commands

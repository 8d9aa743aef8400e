"""MQTT front end: retained state, durable events, commands and Home Assistant discovery.

The server starts one :class:`MqttService` when ``mqtt`` is configured; see
``docs/mqtt.md`` for every topic and payload.
"""

from __future__ import annotations

from server.mqtt.link import LinkState, MqttLink
from server.mqtt.metrics import MqttCollector
from server.mqtt.outbox import Outbox
from server.mqtt.payloads import MqttEventMessage
from server.mqtt.service import MqttService
from server.mqtt.topics import Topics

__all__ = [
    "LinkState",
    "MqttCollector",
    "MqttEventMessage",
    "MqttLink",
    "MqttService",
    "Outbox",
    "Topics",
]

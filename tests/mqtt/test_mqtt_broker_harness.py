"""The test broker itself: a port taken by another program before the broker binds it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from broker_harness import MOSQUITTO, Mosquitto


def test_a_broker_whose_picked_port_is_taken_starts_on_another(tmp_path: Path) -> None:
    if not MOSQUITTO.exists():
        pytest.skip(f"{MOSQUITTO} is not installed")
    broker = Mosquitto(tmp_path)
    taken = broker.port
    # Another program takes the port between the broker picking it and binding it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", taken))
        other.listen()
        try:
            broker.start()
            assert broker.port != taken
            assert broker.running
            with socket.create_connection(("127.0.0.1", broker.port), timeout=5):
                pass
            # A restart keeps the port that clients already know.
            broker.restart()
            assert broker.port != taken
            assert broker.running
        finally:
            broker.stop()
    assert f"listener {broker.port} " in broker.conf.read_text()

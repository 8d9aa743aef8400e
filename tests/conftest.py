"""Shared fixtures. Each section belongs to one area; append, don't rewrite."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_harness import MOSQUITTO, Mosquitto

# ---- MQTT: a real Mosquitto on a free loopback port --------------------------------------------


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the whole session (use a unique topic prefix per test)."""
    if not MOSQUITTO.exists():
        pytest.skip(f"{MOSQUITTO} is not installed")
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop(signal.SIGTERM)


@pytest.fixture
def start_mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Starts brokers of this test's own (``Mosquitto`` options: ``users``, ``extra``), which
    it may stop and restart; all are stopped at teardown."""
    if not MOSQUITTO.exists():
        pytest.skip(f"{MOSQUITTO} is not installed")
    brokers: list[Mosquitto] = []

    def start(**options: Any) -> Mosquitto:
        workdir = tmp_path / f"mosquitto{len(brokers) or ''}"
        workdir.mkdir()
        brokers.append(Mosquitto(workdir, **options))
        brokers[-1].start()
        return brokers[-1]

    yield start
    for broker in brokers:
        broker.stop()


@pytest.fixture
def private_mosquitto(start_mosquitto: Callable[..., Mosquitto]) -> Mosquitto:
    """A broker of this test's own, which it may stop and restart."""
    return start_mosquitto()


@pytest.fixture
def mqtt_prefix() -> str:
    """A topic prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


# ---- end MQTT ----------------------------------------------------------------------------------


# ---- server core: simulated HTTP cameras for the server tests ----------------------------------


@pytest.fixture(scope="session")
def sim_cameras() -> Iterator[object]:
    """One simulated HTTP (MJPEG) camera server for the session, with two scenes:

    ``busy``: objects always moving (an event opens and stays open);
    ``cycle``: 3 s of moving objects, then 5 s still, repeating (events start and end).
    """
    from clients.sim import HttpCamera, SceneSpec

    busy = SceneSpec(width=320, height=240, fps=10, seed=3, objects=2, active_seconds=6,
                     still_seconds=0, loop_seconds=12)  # fmt: skip
    cycle = SceneSpec(width=320, height=240, fps=10, seed=5, objects=2, active_seconds=3,
                      still_seconds=5, loop_seconds=16)  # fmt: skip
    with HttpCamera({"busy": busy, "cycle": cycle}) as cam:
        yield cam


# ---- end server core ---------------------------------------------------------------------------

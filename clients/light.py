"""An example IoT device: a light that follows motion in one zone of one camera.

It switches the light topic ON as soon as motionhub reports motion in the zone
(``<prefix>/<camera>/zones/<zone>/motion`` = ``ON``, or the camera's own motion topic
without ``--zone``), and OFF once the zone has been quiet for ``--off-delay`` seconds.
Motion coming back before then keeps it on. If motionhub itself goes offline while the
light is on, the same delay applies, so a crash never leaves the light on for good; so
does the zone or camera being deleted (motionhub clears its topic with an empty payload).

    python -m clients.light --url mqtt://broker:1883 --camera front --zone door \\
        --light-topic home/porch/light/set --off-delay 30
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiomqtt
import click

from clients.listen import MqttTarget, check_refused, topic_option
from server.backoff import Backoff
from server.mqtt.link import raise_if_cancelling

__all__ = ["LightController", "run_light"]

log = logging.getLogger("motionhub.light")

STOP_SWITCH_OFF_TIMEOUT = 2.0
"""Seconds a stopping client waits for the broker to take the light's OFF."""


class LightController:
    """The decision logic: ON at once, OFF after a quiet delay; publishes through a callback."""

    def __init__(self, switch: Callable[[bool], Awaitable[None]], off_delay: float) -> None:
        self._switch = switch
        self.off_delay = off_delay
        self.light_on = False
        self._off_timer: asyncio.Task[None] | None = None

    async def motion(self, active: bool) -> None:
        """The zone reported motion (``True``) or quiet (``False``)."""
        if active:
            self._cancel_timer()
            if not self.light_on:
                await self._set(True)
        elif self.light_on and self._off_timer is None:
            self._off_timer = asyncio.create_task(self._off_later(), name="light-off")

    async def close(self) -> None:
        """Stop any pending switch-off."""
        self._cancel_timer()

    async def switch_off(self) -> None:
        """Switch the light off now."""
        self._cancel_timer()
        await self._set(False)

    def _cancel_timer(self) -> None:
        if self._off_timer is not None:
            self._off_timer.cancel()
            self._off_timer = None

    async def _off_later(self) -> None:
        await asyncio.sleep(self.off_delay)
        self._off_timer = None
        await self._set(False)

    async def _set(self, on: bool) -> None:
        self.light_on = on
        log.info("light %s", "ON" if on else "OFF")
        await self._switch(on)


async def run_light(
    target: MqttTarget,
    *,
    prefix: str,
    camera: str,
    zone: str | None,
    light_topic: str,
    off_delay: float,
    payloads: tuple[str, str] = ("ON", "OFF"),
    retain: bool = False,
    ready: Callable[[], None] | None = None,
) -> None:
    """Follow the zone until cancelled, reconnecting to the broker when needed (a refusal of
    the credentials raises ``click.ClickException``: retrying cannot help)."""
    motion_topic = f"{prefix}/{camera}/zones/{zone}/motion" if zone else f"{prefix}/{camera}/motion"
    available = f"{prefix}/available"
    client: aiomqtt.Client | None = None

    async def switch(on: bool) -> None:
        if client is None:
            return
        try:
            await client.publish(light_topic, payloads[0 if on else 1], qos=1, retain=retain)
        except aiomqtt.MqttError as exc:
            log.warning("could not switch the light: %s", exc)

    controller = LightController(switch, off_delay)
    backoff = Backoff(first=0.5, cap=15.0)
    try:
        while True:
            try:
                async with target.client() as connected:
                    client = connected
                    await connected.subscribe(motion_topic, qos=1)
                    await connected.subscribe(available, qos=1)
                    raise_if_cancelling()
                    log.info("following %s", motion_topic)
                    backoff.reset()
                    if ready is not None:
                        ready()
                    try:
                        async for m in connected.messages:
                            payload = m.payload if isinstance(m.payload, bytes) else b""
                            # An empty payload clears the topic: the zone or camera was
                            # deleted, and no OFF will ever follow.
                            if m.topic.value == motion_topic and payload in (b"ON", b"OFF", b""):
                                await controller.motion(payload == b"ON")
                            elif m.topic.value == available and payload == b"offline":
                                await controller.motion(False)
                            raise_if_cancelling()  # a stop during the switch's publish
                    except asyncio.CancelledError:
                        # Stopped (Ctrl-C, SIGTERM) while the light is on: nobody would
                        # switch it off, so do it now, if the broker takes it in time.
                        if controller.light_on:
                            await controller.close()
                            with contextlib.suppress(TimeoutError):
                                async with asyncio.timeout(STOP_SWITCH_OFF_TIMEOUT):
                                    await controller.switch_off()
                        raise
            except aiomqtt.MqttError as exc:
                client = None
                check_refused(target, exc)
                delay = backoff.next()
                log.warning("broker connection: %s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
    finally:
        await controller.close()


async def _until_stopped(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work``, cancelled by SIGTERM as Ctrl-C cancels it, so it can clean up."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    await work


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", default="mqtt://127.0.0.1:1883", show_default=True, help="The broker.")
@click.option(
    "--prefix",
    default="motionhub",
    show_default=True,
    callback=topic_option,
    help="motionhub's prefix.",
)
@click.option("--camera", required=True, callback=topic_option, help="Camera id.")
@click.option(
    "--zone", default=None, callback=topic_option, help="Zone name (default: motion anywhere)."
)
@click.option(
    "--light-topic", required=True, callback=topic_option, help="Topic that switches the light."
)
@click.option(
    "--off-delay",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds of quiet before switching off.",
)
@click.option(
    "--on-payload", default="ON", show_default=True, help="Payload that switches the light on."
)
@click.option(
    "--off-payload", default="OFF", show_default=True, help="Payload that switches it off."
)
@click.option("--retain/--no-retain", default=False, help="Publish the light state retained.")
@click.option("--username", default=None, help="Broker user (or in the URL).")
@click.option(
    "--password",
    envvar="MOTIONHUB_MQTT_PASSWORD",
    default=None,
    help="Broker password (better: the MOTIONHUB_MQTT_PASSWORD variable).",
)
def main(
    *,
    url: str,
    prefix: str,
    camera: str,
    zone: str | None,
    light_topic: str,
    off_delay: float,
    on_payload: str,
    off_payload: str,
    retain: bool,
    username: str | None,
    password: str | None,
) -> None:
    """Switch a light on when motion starts in a zone, and off a while after it ends."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    target = MqttTarget(url, username, password)
    try:
        asyncio.run(
            _until_stopped(
                run_light(
                    target,
                    prefix=prefix.rstrip("/"),
                    camera=camera,
                    zone=zone,
                    light_topic=light_topic,
                    off_delay=off_delay,
                    payloads=(on_payload, off_payload),
                    retain=retain,
                )
            )
        )
    except KeyboardInterrupt:
        sys.exit(130)  # Ctrl-C, as for watch and listen
    except asyncio.CancelledError:
        sys.exit(128 + signal.SIGTERM)


if __name__ == "__main__":
    main()

"""MQTT as a front end of the server: hub messages out, commands in, HA discovery.

:class:`MqttService` subscribes a non-blocking callback to the hub. Event messages
go into the persistent :class:`~server.mqtt.outbox.Outbox`; everything else is a
retained state kept in the :class:`~server.mqtt.state.StateStore`. While connected,
two loops publish them (events in order, QoS 1, by an
:class:`~server.mqtt.sender.EventSender`, which starts an event's publish from the hub
callback itself when nothing is ahead of it; states coalesced, retained), and incoming
commands and Home Assistant birth messages are handled. The pipeline never waits for
any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import aiomqtt

from server.config import MqttSettings
from server.ids import new_id
from server.messages import (
    CameraRemoved,
    CameraStatusMessage,
    EventEndMessage,
    EventStartMessage,
    EventUpdateMessage,
    ServerMessage,
)
from server.mqtt.commands import CommandError, parse_command
from server.mqtt.discovery import CameraView, discovery_configs, encode_config
from server.mqtt.link import LinkState, MqttLink
from server.mqtt.outbox import Outbox
from server.mqtt.payloads import (
    OFF,
    OFFLINE,
    ON,
    ONLINE,
    MqttEventMessage,
    event_kind,
    fps_payload,
    switch_payload,
)
from server.mqtt.sender import EventSender
from server.mqtt.state import SnapshotRef, StateStore, StateValue
from server.mqtt.topics import CommandKind, Topics
from server.services import CameraNotFound, Services

__all__ = ["MqttService"]

log = logging.getLogger(__name__)

_SYNC_INTERVAL = 5.0
"""Seconds between checks of the camera list for changes made without a hub message."""
_COMMAND_TIMEOUT = 10.0
_WINDOW = 32
"""Event messages published but not yet acknowledged, at most."""


def _version() -> str:
    try:
        return version("motionhub")
    except PackageNotFoundError:
        return "0"


class _Throttle:
    """Lets a repeated log line through at most once per ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -1e9
        self.suppressed = 0

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            return True
        self.suppressed += 1
        return False


class MqttService:
    """The MQTT front end; see ``docs/mqtt.md`` for every topic and payload.

    The server runs :meth:`serve` as one long-lived task and cancels it to stop::

        mqtt = MqttService(core, settings.mqtt, settings.storage.path,
                           on_connected=core.metrics.set_mqtt_connected)
        task = tg.create_task(mqtt.serve(), name="mqtt")
        ...
        task.cancel()   # drains briefly, publishes offline, disconnects, outbox on disk

    Tests may call :meth:`start`, :meth:`run` and :meth:`stop` separately instead.
    """

    def __init__(
        self,
        services: Services,
        settings: MqttSettings,
        data_dir: Path,
        *,
        stop_grace: float = 2.0,
        server_version: str | None = None,
        on_connected: Callable[[bool], None] | None = None,
        on_error: Callable[[str | None], None] | None = None,
        timeout: float = 10.0,
    ) -> None:
        """``on_connected`` is called with ``True``/``False`` whenever the connection comes
        up or goes down (feeds ``motionhub_mqtt_connected`` and ``/readyz``), and
        ``on_error`` with the reason the link is down whenever it changes (None once it is
        up; feeds ``/api/status``). ``timeout`` bounds the wait for the broker's answer to a
        connect or a publish."""
        self.services = services
        self.settings = settings
        self.topics = Topics(settings.topic_prefix, settings.discovery.prefix)
        self.outbox = Outbox(data_dir / "outbox.db", settings.outbox_max)
        self.states = StateStore()
        self.link = MqttLink(
            settings, self, timeout=timeout, stop_grace=stop_grace, on_state=self._link_state
        )
        self._on_connected = on_connected
        self._reported_up = False
        self._on_error = on_error
        self._reported_error: str | None = None
        self._stop_grace = stop_grace
        self.version = server_version or _version()
        self.events_published = 0
        self.states_published = 0
        self.commands_applied = 0
        self.commands_rejected = 0
        self._known: dict[str, CameraView] = {}
        self._configs: set[str] = set()
        self._config_cache: dict[str, tuple[CameraView, dict[str, bytes]]] = {}
        """Per camera: the view its discovery configs were encoded for, and those payloads."""
        self._stale: set[str] = set()
        """Retained topics an earlier run left (configs and camera states), cleared at the
        next camera sync unless still wanted."""
        self._open: dict[str, dict[str, tuple[str, ...]]] = {}
        self._snapshot_version = 0
        self._sync_needed = True
        self._synced = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._bad_command_log = _Throttle(5.0)
        self._sender: EventSender | None = None
        """Publishes the outbox while connected."""

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def state(self) -> LinkState:
        """The broker connection's state."""
        return self.link.state

    @property
    def connected(self) -> asyncio.Event:
        """Set while connected to the broker (for ``/readyz``)."""
        return self.link.connected

    async def serve(self) -> None:
        """Everything, as one task: start, stay connected, and stop cleanly when cancelled.

        It can run again after it ended (the app restarts a front end that failed)."""
        try:
            await self.start()
        except BaseException:
            await self._close()
            raise
        self.link.rearm()
        link = asyncio.create_task(self.link.run(), name="mqtt-link")
        try:
            # Shielded so that cancelling serve() becomes a clean stop of the link, with
            # "offline" published, instead of an abrupt one.
            await asyncio.shield(link)
        finally:
            self.link.request_stop()
            done, _ = await asyncio.wait([link], timeout=self._stop_grace * 2 + 1)
            if not done:
                link.cancel()
            await self._close()

    async def start(self) -> None:
        """Start listening to the hub, then load pending messages from the outbox."""
        # Subscribe before the first await so no message published meanwhile is missed;
        # the outbox keeps what arrives before it is open.
        self._unsubscribe = self.services.hub.subscribe("mqtt", self._on_hub)
        # A stop before this one (the app restarts a front end that failed) left every
        # camera "offline" here; they are as the core says.
        for info in self.services.cameras():
            self.states.set(
                self.topics.status(info.id), ONLINE if info.status == "online" else OFFLINE
            )
        self._sync_cameras()
        await self.outbox.open()

    async def run(self) -> None:
        """Stay connected to the broker until :meth:`stop` (run this as a task)."""
        await self.link.run()

    async def stop(self, grace: float = 5.0) -> None:
        """Drain briefly, publish ``offline``, disconnect, and keep the rest on disk."""
        await self.link.stop(grace)
        await self._close()

    async def _close(self) -> None:
        unsubscribe = self._unsubscribe
        self._unsubscribe = None
        if unsubscribe is not None:
            unsubscribe()
        await self.outbox.close()

    # -- hub -> outbox / states (runs inside the pipeline's publish: never blocks) -------------

    def _link_state(self, state: LinkState) -> None:
        up = state is LinkState.CONNECTED
        if up != self._reported_up:
            self._reported_up = up
            if self._on_connected is not None:
                self._on_connected(up)
        # Why the link is down (the last failure, host and port only), None while it is up.
        error = None if up else self.link.last_error
        if error != self._reported_error:
            self._reported_error = error
            if self._on_error is not None:
                self._on_error(error)

    def _on_hub(self, message: ServerMessage) -> None:
        if isinstance(message, EventStartMessage | EventUpdateMessage | EventEndMessage):
            self._on_event(message)
        elif isinstance(message, CameraStatusMessage):
            self.states.set(
                self.topics.status(message.camera),
                ONLINE if message.status == "online" else OFFLINE,
            )
            self.states.set(self.topics.fps(message.camera), fps_payload(message.fps))
            self._request_sync()
        elif isinstance(message, CameraRemoved):
            self._forget_camera(message.camera, message.zones)
            self._request_sync()

    def _on_event(self, message: EventStartMessage | EventUpdateMessage | EventEndMessage) -> None:
        event = message.event
        kind = event_kind(message)
        ts = message.ts if isinstance(message, EventStartMessage) and message.ts else time.time()
        wire = MqttEventMessage(type=kind, id=new_id(), ts=ts, event=event)
        msg = self.outbox.put(self.topics.events, wire.model_dump_json().encode(), wire.id, qos=1)
        if self._sender is not None:
            self._sender.offer(msg)  # started now, not once the sender's task wakes up

        cam = event.camera
        was_on = self._zones_on(cam)
        open_events = self._open.setdefault(cam, {})
        if kind == "end" or event.end is not None:
            # An update can follow an end (a snapshot written after the event ended).
            open_events.pop(event.id, None)
        else:
            open_events[event.id] = tuple(event.zones)
        now_on = self._zones_on(cam)
        self.states.set(self.topics.motion(cam), switch_payload(bool(open_events)))
        # Only the camera's zones now: one deleted while the event was open has had its
        # retained state cleared, and setting it would bring it back.
        known = self._known.get(cam)
        live = set(known.zones) if known is not None else now_on | was_on
        for zone in (now_on - was_on) & live:
            self.states.set(self.topics.zone_motion(cam, zone), ON)
        for zone in (was_on - now_on) & live:
            self.states.set(self.topics.zone_motion(cam, zone), OFF)
        if not open_events:
            self._open.pop(cam, None)
        if event.has_snapshot:
            self._snapshot_version += 1
            self.states.set(
                self.topics.snapshot(cam), SnapshotRef(event.id, self._snapshot_version)
            )

    def _zones_on(self, camera: str) -> set[str]:
        return {z for zones in self._open.get(camera, {}).values() for z in zones}

    # -- cameras, zones and discovery ----------------------------------------------------

    def _camera_views(self) -> list[CameraView]:
        views = {
            c.id: CameraView(c.id, c.display_name, tuple(z.name for z in c.zones))
            for c in self.services.settings.cameras
        }
        for info in self.services.cameras():
            if info.id not in views:
                views[info.id] = CameraView(info.id, info.name or info.id, tuple(info.zones))
        return list(views.values())

    def _request_sync(self) -> None:
        # The camera list may have changed; the publishing loop re-reads it (not here: the
        # hub callback must stay cheap).
        self._sync_needed = True
        self._synced.clear()
        self.states.changed.set()

    async def wait_idle(self, within: float = 5.0) -> bool:
        """Wait up to ``within`` seconds until camera changes are applied and every
        retained state is sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._synced.wait()
        return self._synced.is_set() and await self.states.wait_idle(
            max(0.0, deadline - loop.time())
        )

    def _sync_cameras(self) -> None:
        """Bring retained states and discovery configs in line with the configured cameras."""
        self._sync_needed = False
        infos = {c.id: c for c in self.services.cameras()}
        settings = {c.id: c for c in self.services.settings.cameras}
        views = self._camera_views()
        configs: set[str] = set()
        for view in views:
            info = infos.get(view.id)
            cam_settings = settings.get(view.id)
            if info is not None:
                detect = info.detect_enabled
            else:
                detect = cam_settings.detect.enabled if cam_settings is not None else True
            threshold = cam_settings.detect.threshold if cam_settings is not None else 0
            online = info is not None and info.status == "online"
            configs |= self._sync_camera(view, online, detect, threshold)
        current = {v.id for v in views}
        for cam in list(self._known):
            if cam not in current:
                self._forget_camera(cam, self._known[cam].zones)
        for topic in self._configs - configs:
            self.states.clear(topic)
        self._configs = configs
        if self._stale and self._cameras_settled():
            wanted = configs.union(*(self.topics.camera_state_topics(v.id, v.zones) for v in views))
            for topic in sorted(self._stale - wanted):
                log.info("removing stale retained topic %s", topic)
                self.states.clear(topic)
            self._stale.clear()
        self._synced.set()

    def _cameras_settled(self) -> bool:
        # The core loads cameras added through the API from storage as it starts; until
        # then a config on the broker may look stale when it is not, and removing it would
        # make Home Assistant forget the entity and its customisations.
        return self.services.running

    def _sync_camera(
        self, view: CameraView, online: bool, detect: bool, threshold: int
    ) -> set[str]:
        t = self.topics
        cam = view.id
        # Values owned by hub messages are only seeded here, never overwritten.
        self._seed(t.status(cam), ONLINE if online else OFFLINE)
        self._seed(t.fps(cam), fps_payload(0.0))
        self._seed(t.motion(cam), switch_payload(cam in self._open))
        on = self._zones_on(cam)
        for zone in view.zones:
            self._seed(t.zone_motion(cam, zone), switch_payload(zone in on))
        old = self._known.get(cam)
        if old is not None:
            for zone in set(old.zones) - set(view.zones):
                self.states.clear(t.zone_motion(cam, zone))
        self.states.set(t.state(cam, "detect"), switch_payload(detect))
        self.states.set(t.state(cam, "threshold"), str(threshold).encode())
        self._known[cam] = view
        if not self.settings.discovery.enabled:
            return set()
        cached = self._config_cache.get(cam)
        if cached is not None and cached[0] == view:
            configs = cached[1]
        else:
            # Encoding every config on every sync would block the loop for milliseconds.
            configs = {
                topic: encode_config(config)
                for topic, config in discovery_configs(t, view, self.version).items()
            }
            self._config_cache[cam] = (view, configs)
        for topic, payload in configs.items():
            self.states.set(topic, payload)
        return set(configs)

    def _seed(self, topic: str, value: bytes) -> None:
        if self.states.get(topic) in (None, b""):
            self.states.set(topic, value)

    def _forget_camera(self, camera: str, zones: tuple[str, ...] | list[str]) -> None:
        known = self._known.pop(camera, None)
        self._config_cache.pop(camera, None)
        all_zones = set(zones) | set(known.zones if known else ())
        for topic in self.topics.camera_state_topics(camera, sorted(all_zones)):
            self.states.clear(topic)
        self._open.pop(camera, None)
        if known is not None and self.settings.discovery.enabled:
            for topic in discovery_configs(self.topics, known, self.version):
                self.states.clear(topic)
                self._configs.discard(topic)

    # -- the connection (called by MqttLink) ------------------------------------------------

    def subscriptions(self) -> list[str]:
        """Commands, the retained camera and zone states (to find deleted ones), this
        server's discovery configs (to remove stale ones, all of them with discovery off),
        and with discovery on, HA's birth topic."""
        subs = list(self.topics.command_filters) + self.topics.presence_filters
        subs.append(self.topics.discovery_filter)
        if self.settings.discovery.enabled:
            subs.append(self.topics.ha_status)
        return subs

    async def announce(self, client: aiomqtt.Client) -> None:
        """Re-read the camera list and publish every retained state, before ``online``.

        Everything is due again on a new connection (the broker may have lost its retained
        copies). After a crash the broker still holds a camera's ``online`` and its
        ``motion`` ``ON``; were ``online`` first, Home Assistant would show that motion as
        current, and automations triggered by it would run."""
        self._request_sync()
        self.states.mark_all()
        await self._publish_round(client)

    async def session(self, client: aiomqtt.Client) -> None:
        """Publish events and states for as long as the connection lives."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._publish_events(client), name="mqtt-events")
            tg.create_task(self._publish_states(client), name="mqtt-states")

    async def drain(self, grace: float) -> None:
        """Give queued events and states up to ``grace`` seconds to go out.

        Every camera goes ``offline`` first: once the server is gone nothing delivers its
        frames, and a retained ``online`` would say otherwise to anyone who reads a
        camera's status without ``<prefix>/available``."""
        for camera in self._known:
            self.states.set(self.topics.status(camera), OFFLINE)
        deadline = asyncio.get_running_loop().time() + grace
        await self.outbox.wait_empty(grace)
        await self.states.wait_idle(max(0.0, deadline - asyncio.get_running_loop().time()))

    async def _publish_events(self, client: aiomqtt.Client) -> None:
        sender = EventSender(self.outbox, client, _WINDOW, self._event_sent)
        self._sender = sender
        try:
            await sender.run()
        finally:
            if self._sender is sender:
                self._sender = None

    def _event_sent(self) -> None:
        self.events_published += 1

    async def _publish_states(self, client: aiomqtt.Client) -> None:
        while True:
            if await self._publish_round(client):
                continue
            try:
                async with asyncio.timeout(_SYNC_INTERVAL):
                    await self.states.changed.wait()
            except TimeoutError:
                self._request_sync()

    async def _publish_round(self, client: aiomqtt.Client) -> bool:
        """Apply camera changes and publish the states due; whether there were any."""
        if self._sync_needed:
            try:
                self._sync_cameras()
            except Exception:
                log.exception("cannot read the camera list for MQTT")
        batch = self.states.take()
        if batch:
            async with asyncio.TaskGroup() as tg:
                for topic, value in batch:
                    tg.create_task(self._publish_state(client, topic, value))
        return bool(batch)

    async def _publish_state(self, client: aiomqtt.Client, topic: str, value: StateValue) -> None:
        sent = False
        try:
            payload = await self._payload(value)
            if payload is not None:
                await client.publish(topic, payload, qos=1, retain=True)
                self.states_published += 1
            sent = True
        finally:
            self.states.done(topic, value, sent)

    async def _payload(self, value: StateValue) -> bytes | None:
        if isinstance(value, bytes):
            return value
        try:
            return await self.services.event_snapshot(value.event_id)
        except Exception:
            log.exception("cannot read the snapshot of event %s", value.event_id)
            return None

    # -- incoming ----------------------------------------------------------------------

    async def handle(self, message: aiomqtt.Message) -> None:
        """Route one incoming message; never raises."""
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else b""
        try:
            if topic == self.topics.ha_status:
                # HA (re)started: it forgot every entity, so send the configs again.
                if payload == ONLINE and not message.retain:
                    log.info("Home Assistant is online; republishing discovery")
                    self.states.mark(sorted(self._configs))
                return
            if self.topics.is_own_discovery(topic):
                # A config left on the broker by an earlier run for something deleted since,
                # or from before discovery was switched off; the next camera sync removes it
                # if it is still not wanted.
                if payload and topic not in self._configs:
                    self._stale.add(topic)
                    self._request_sync()
                return
            presence = self.topics.parse_presence(topic)
            if presence is not None:
                # Only what the broker kept from before counts; live copies of this
                # server's own publishes come back without the retain flag.
                if message.retain and payload:
                    cam, zone = presence
                    zones = [zone] if zone is not None else []
                    # A camera's status stands for all of its state topics.
                    self._stale.update(self.topics.camera_state_topics(cam, zones))
                    self._request_sync()
                return
            parsed = self.topics.parse_command(topic)
            if parsed is not None:
                await self._command(parsed[0], parsed[1], payload, retained=message.retain)
        except Exception:
            log.exception("failed to handle an MQTT message on %s", topic)

    async def _command(
        self, camera: str, kind: CommandKind, payload: bytes, *, retained: bool
    ) -> None:
        if not payload:
            # How a client clears a retained command it sent by mistake: nothing to apply.
            log.debug("empty MQTT %s command for %r ignored", kind, camera)
            return
        if retained:
            # A retained command would be re-applied on every reconnect, undoing later changes.
            self._reject(camera, kind, payload, "retained commands are ignored")
            return
        try:
            cmd = parse_command(camera, kind, payload)
        except CommandError as exc:
            self._reject(camera, kind, payload, exc.reason)
            return
        try:
            async with asyncio.timeout(_COMMAND_TIMEOUT):
                if cmd.kind == "detect":
                    await self.services.set_detect_enabled(camera, bool(cmd.value))
                else:
                    await self.services.set_threshold(camera, int(cmd.value))
        except CameraNotFound:
            self._reject(camera, kind, payload, "no such camera")
            return
        except (ValueError, TimeoutError) as exc:
            self._reject(camera, kind, payload, str(exc) or type(exc).__name__)
            return
        self.commands_applied += 1
        value = switch_payload(bool(cmd.value)) if cmd.kind == "detect" else str(cmd.value).encode()
        self.states.set(self.topics.state(camera, cmd.kind), value)
        log.info("MQTT command: %s %s = %s", camera, cmd.kind, value.decode())

    def _reject(self, camera: str, kind: str, payload: bytes, reason: str) -> None:
        self.commands_rejected += 1
        if self._bad_command_log.ready():
            log.warning(
                "ignored MQTT %s command for %r: %s (payload %r)%s",
                kind,
                camera,
                reason,
                payload[:40],
                f", {self._bad_command_log.suppressed} similar suppressed"
                if self._bad_command_log.suppressed
                else "",
            )
            self._bad_command_log.suppressed = 0

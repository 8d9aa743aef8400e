"""The configuration model tree: everything the server can be told, in :class:`Settings`.

Unknown keys are rejected everywhere and every number has bounds. Environment variables
override the file: ``MOTIONHUB_SERVER__PORT=9000`` sets ``server.port``; nested keys are
joined with ``__``; lists take JSON. Reading a file into it, with errors that name the
line, is :mod:`server.settings_file`.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from detector import DetectorConfig, DetectorTuning, Polygon, Zone
from server.ha_entities import entity_clash
from server.redact import REDACTED, hidden_userinfo, masked_credentials

__all__ = [
    "AuthToken",
    "CameraSettings",
    "DetectSettings",
    "EventSettings",
    "LoggingSettings",
    "MqttSettings",
    "Settings",
    "WebSocketSettings",
]

CAMERA_SCHEMES = ("rtsp", "rtsps", "http", "https", "file")
CameraKind = Literal["auto", "rtsp", "mjpeg", "snapshot", "file", "v4l2"]
Role = Literal["admin", "viewer"]
CameraId = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Stable id: lower-case letters, digits, '-' and '_' (used in URLs, topics).",
    ),
]


_NUMBER_TYPES: tuple[object, ...] = (int, float, int | None, float | None)


class _NoBoolNumbers(BaseModel):
    """YAML reads ``yes``/``on``/``true`` as a boolean, which pydantic would take as 1 for a
    number (``port: yes`` listened on port 1): a boolean for a numeric key is an error."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and field.annotation in _NUMBER_TYPES:
                raise ValueError("expected a number, not a boolean (true/false/yes/no/on/off)")
        return value


# NaN fails every bound check, so without this a NaN setting got a misleading "less than or
# equal to ..." error (and an unbounded one passed): every float setting must be finite.
class _Model(_NoBoolNumbers):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class AuthToken(_Model):
    """One API token and the role it grants."""

    token: SecretStr = Field(description="The bearer token (at least 16 characters).")
    role: Role = Field(description="admin may change cameras and config; viewer may only read.")
    name: str = Field(default="", max_length=64, description="A label for logs; never the token.")

    @field_validator("token")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("tokens must be at least 16 characters long")
        return v


class AuthSettings(_Model):
    """API and WebSocket authentication. With no tokens the server only binds to loopback."""

    tokens: list[AuthToken] = Field(default_factory=list, description="Accepted tokens.")


class WebSocketSettings(_Model):
    """The ``/ws`` live feed: per-client buffering, slow-client policy and heartbeats."""

    queue_size: int = Field(
        default=256,
        ge=8,
        le=100_000,
        description="Event messages one client may have unsent; past it the client is closed "
        "with 1013 (stale motion is replaced, never counted).",
    )
    slow_client_timeout: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="A client with unsent messages for this many seconds is closed with 1013.",
    )
    max_clients: int = Field(
        default=5000, ge=1, le=100_000, description="Most connected clients; more get 1013."
    )
    auth_timeout: float = Field(
        default=5.0, gt=0, le=60, description="Seconds to wait for a first auth message."
    )
    close_timeout: float = Field(
        default=5.0, gt=0, le=60, description="Seconds to wait for a close frame to go out."
    )
    ping_interval: float = Field(
        default=20.0, ge=1, le=3600, description="Seconds between server pings."
    )
    ping_timeout: float = Field(
        default=20.0,
        ge=1,
        le=3600,
        description="A peer that has not answered a ping by then is closed.",
    )
    motion_interval: float = Field(
        default=0.1,
        ge=0,
        le=60,
        description="Least seconds between two motion messages of a camera whose motion state "
        "did not change (a change is always sent at once).",
    )
    idle_motion_interval: float = Field(
        default=0.5,
        ge=0,
        le=3600,
        description="The same while the camera sees no motion.",
    )
    motion_budget: float = Field(
        default=2000.0,
        ge=10,
        le=1_000_000,
        description="Most motion messages a second to all clients together: with many "
        "clients, repeats of an unchanged motion state are spaced further apart.",
    )
    compression: bool = Field(
        default=False,
        description="Offer permessage-deflate: smaller frames on slow links, but CPU spent "
        "compressing every message once per client.",
    )
    send_buffer: int = Field(
        default=32768,
        ge=4096,
        le=4 << 20,
        description="Kernel send buffer of each WebSocket connection, in bytes (Linux doubles "
        "it); bounds what a client that stops reading holds and how soon it counts as slow.",
    )
    replay_limit: int = Field(
        default=1000, ge=1, le=100_000, description="Most events one resume replays."
    )


class ServerSettings(_Model):
    """The HTTP listener and request limits."""

    host: str = Field(default="127.0.0.1", description="Address to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0 picks a free one).")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS and the WebSocket Origin check."
    )
    max_body_bytes: int = Field(
        default=1 << 20, ge=1024, le=64 << 20, description="Largest accepted request body."
    )
    max_header_bytes: int = Field(
        default=64 << 10,
        ge=4096,
        le=1 << 20,
        description="Largest accepted request line and headers together; larger gets 431.",
    )
    max_cameras: int = Field(default=64, ge=1, le=1024, description="Most cameras at once.")
    websocket: WebSocketSettings = Field(default_factory=WebSocketSettings)


class StorageSettings(_Model):
    """Where events and snapshots are kept, and for how long."""

    path: Path = Field(default=Path("./motionhub-data"), description="Data directory.")
    retention_days: float = Field(
        default=30.0, gt=0, le=3650, description="Events older than this are deleted."
    )
    max_events: int = Field(
        default=100_000, ge=10, le=10_000_000, description="Most events kept; oldest go first."
    )
    snapshot_quality: int = Field(default=85, ge=10, le=100, description="JPEG quality.")


class LoggingSettings(_Model):
    """Log level and format."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO")
    format: Literal["text", "json"] = Field(default="text", description="text for people, json.")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class MqttTls(_Model):
    """TLS for the broker connection (implied by an ``mqtts://`` URL)."""

    ca: Path | None = Field(default=None, description="CA bundle to verify the broker.")
    cert: Path | None = Field(default=None, description="Client certificate.")
    key: Path | None = Field(default=None, description="Client private key.")
    insecure: bool = Field(default=False, description="Skip verification (tests only).")

    @field_validator("ca", "cert", "key")
    @classmethod
    def _existing_file(cls, v: Path | None) -> Path | None:
        # Checked here, not at connect time: a missing file would otherwise only show as a
        # broker "unreachable" with a bare "No such file or directory", retried for ever.
        if v is not None and not v.is_file():
            raise ValueError(f"no such file: {v}")
        return v


class DiscoverySettings(_Model):
    """Home Assistant MQTT discovery."""

    enabled: bool = Field(default=True)
    prefix: str = Field(default="homeassistant", pattern=r"^[A-Za-z0-9_/-]{1,64}$")


class MqttSettings(_Model):
    """The MQTT broker link. Leave the whole section out to run without MQTT."""

    url: str = Field(description="mqtt://host:1883 or mqtts://host:8883")
    topic_prefix: str = Field(default="motionhub", pattern=r"^[A-Za-z0-9_/-]{1,64}$")
    username: str | None = Field(default=None, max_length=256)
    password: SecretStr | None = Field(default=None)
    client_id: str | None = Field(default=None, max_length=128)
    keepalive: int = Field(default=30, ge=5, le=3600, description="Seconds.")
    tls: MqttTls = Field(default_factory=MqttTls)
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    outbox_max: int = Field(
        default=10_000,
        ge=10,
        le=10_000_000,
        description="Event messages kept while the broker is away; older ones past it are dropped.",
    )
    reconnect_min: float = Field(
        default=0.5, gt=0, le=60, description="Seconds before the first reconnect attempt."
    )
    reconnect_max: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Longest wait between reconnect attempts (doubling, jittered).",
    )

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, v: str) -> str:
        parts = urlsplit(v)
        check_url_authority(v)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must look like mqtt://host:1883 or mqtts://host:8883")
        return v


class DetectSettings(DetectorTuning, _NoBoolNumbers):
    """Motion detection tuning for one camera, plus whether and how often to analyse."""

    model_config = ConfigDict(allow_inf_nan=False)  # as in _Model, for the detector's floats too

    enabled: bool = Field(default=True, description="Run motion detection on this camera.")
    fps: float = Field(default=10.0, gt=0, le=60, description="Most frames analysed per second.")


class EventSettings(_Model):
    """How motion frames become events."""

    min_frames: int = Field(
        default=3, ge=1, le=100, description="Consecutive motion frames that start an event."
    )
    off_delay: float = Field(
        default=5.0, ge=0, le=3600, description="Seconds without motion that end an event."
    )
    max_length: float = Field(
        default=600.0, ge=10, le=86400, description="Longest event; a longer one is split."
    )


class CameraSettings(_Model):
    """One camera."""

    id: CameraId
    name: str = Field(default="", max_length=128, description="Display name (defaults to id).")
    url: str = Field(description="Main stream: rtsp(s)://, http(s)://, file path or /dev/videoN.")
    detect_url: str | None = Field(
        default=None, description="Optional low-resolution substream used for detection."
    )
    kind: CameraKind = Field(default="auto", description="Source type; auto uses the URL.")
    enabled: bool = Field(default=True)
    rtsp_transport: Literal["tcp", "udp"] = Field(default="tcp")
    snapshot_interval: float = Field(
        default=1.0, ge=0.05, le=3600, description="Seconds between polls of a snapshot URL."
    )
    loop: bool = Field(default=True, description="Loop a video file source.")
    tls_verify: bool = Field(
        default=True,
        description="Check the TLS certificate of an https/rtsps camera; false if self-signed.",
    )
    tls_ca: Path | None = Field(
        default=None,
        description="CA bundle (PEM, absolute path) to check it against instead of the system's.",
    )
    open_timeout: float = Field(default=10.0, gt=0, le=300, description="Seconds.")
    read_timeout: float = Field(default=10.0, gt=0, le=300, description="Seconds.")
    stall_timeout: float = Field(
        default=10.0, gt=0, le=3600, description="No frame for this long counts as a disconnect."
    )
    detect: DetectSettings = Field(default_factory=DetectSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    zones: list[Zone] = Field(default_factory=list, max_length=32)
    masks: list[Polygon] = Field(default_factory=list, max_length=32)

    @field_validator("name")
    @classmethod
    def _printable_name(cls, v: str) -> str:
        # The name is shown in the dashboard, logs and Home Assistant: a line break or NUL
        # there splits log lines and entity names.
        if _control_at(v) is not None:
            raise ValueError("must not hold control characters (line breaks, tabs, NUL)")
        # Spaces around a name typed into a form are not part of it, and a name of spaces
        # only would show as a blank label: both fall back like an empty name.
        return v.strip()

    @field_validator("url", "detect_url")
    @classmethod
    def _camera_url(cls, v: str | None) -> str | None:
        if v is not None:
            # A URL pasted with its line break: the break was never part of it.
            v = v.strip()
            check_camera_url(v)
        return v

    @field_validator("tls_ca")
    @classmethod
    def _absolute_ca(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_absolute():
            raise ValueError("the CA bundle needs an absolute path")
        return v

    @model_validator(mode="after")
    def _unique_zones(self) -> CameraSettings:
        names = [z.name for z in self.zones]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"zone names must be unique, repeated: {', '.join(dupes)}")
        return self

    @property
    def display_name(self) -> str:
        """The name to show people."""
        return self.name or self.id

    def detector_config(self) -> DetectorConfig:
        """The pure detector's config for this camera: its tuning, zones and masks."""
        tuning = self.detect.model_dump(exclude={"enabled", "fps"})
        return DetectorConfig(**tuning, zones=tuple(self.zones), masks=tuple(self.masks))


_UNPARSEABLE_CREDENTIALS = (
    "the credentials cannot be parsed: percent-encode '@', ':', '/', '?' and '#' in the user"
    " name and password (e.g. '#' as %23)"
)


_MASKED_CREDENTIALS = (
    f"the user name, password or a credential parameter is {REDACTED!r}, the mask the API"
    " shows in place of stored credentials: give the real user name and password, or (in an"
    " API change) send the URL exactly as the API shows it to keep the stored ones"
)


def check_url_authority(url: str) -> None:
    """Raise ``ValueError`` (never echoing the URL) if the user name, password or port of
    ``url`` cannot be parsed: an unencoded ``#``, ``?`` or ``/`` in a password ends the host
    part early, leaving the rest of the password in the path, query or fragment, where
    masking cannot find it."""
    if hidden_userinfo(url) is not None:
        raise ValueError(_UNPARSEABLE_CREDENTIALS)
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing is the check
    except ValueError:
        # urlsplit's own message shows the text after ':', which may be a password.
        port = parts.netloc.rpartition("@")[2].rpartition("]")[2].rpartition(":")[2]
        if port.isascii() and port.isdigit():
            raise ValueError("the port is out of range: it must be between 1 and 65535") from None
        if "@" in parts.netloc:
            raise ValueError(
                "the port is not a number (or the password holds an unencoded '@', ':', '/',"
                " '?' or '#'; percent-encode it, e.g. '#' as %23)"
            ) from None
        raise ValueError("the port is not a number between 1 and 65535") from None
    if parts.port == 0:
        raise ValueError("port 0 is not a port a camera or broker can listen on (1..65535)")


def _control_at(text: str) -> int | None:
    """The position of the first control character (a line break, tab, NUL, DEL) in
    ``text``, or None."""
    return next((i for i, ch in enumerate(text) if ord(ch) < 0x20 or ord(ch) == 0x7F), None)


def check_camera_url(url: str) -> None:
    """Raise ``ValueError`` (without echoing credentials) if ``url`` is not a usable source."""
    if not url or len(url) > 2048:
        raise ValueError("must be a non-empty URL of at most 2048 characters")
    control = _control_at(url)
    if control is not None:
        # FFmpeg writes the URL into the RTSP request line as it is, so a line break would
        # add headers or whole requests; the masked form would not even show it.
        raise ValueError(
            f"holds a control character (a line break, tab or NUL) at position {control}; "
            "percent-encode it (e.g. a line break as %0A)"
        )
    if url.startswith("/"):
        return  # a file or a device (/dev/videoN): the camera policy tells which
    parts = urlsplit(url)
    if parts.scheme not in CAMERA_SCHEMES:
        shown = parts.scheme or "(none)"
        # A relative path (``media/clip.mp4``) has no scheme: say what it lacks.
        hint = "; a video file needs an absolute path" if not parts.scheme else ""
        raise ValueError(
            f"unsupported scheme {shown!r}{hint}; use one of {', '.join(CAMERA_SCHEMES)}, "
            "an absolute file path or /dev/videoN"
        )
    if parts.scheme != "file":
        check_url_authority(url)
        if not parts.hostname:
            raise ValueError(f"a {parts.scheme}:// URL needs a host")
        if masked_credentials(url):
            raise ValueError(_MASKED_CREDENTIALS)


def _network(value: Any) -> Any:
    """An IP network from its text (``192.168.1.0/24``, ``10.0.0.1`` for one address), with
    a plain message instead of pydantic's union internals."""
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return value
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            return ipaddress.ip_network(value)
        except ValueError as exc:
            if "host bits set" in str(exc):
                raise ValueError(
                    "has host bits set: write the network address (e.g. 192.168.1.0/24)"
                ) from None
    raise ValueError("not an IP network (e.g. 192.168.1.0/24)")


Network = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_network)]


class SecuritySettings(_Model):
    """Which camera sources are allowed."""

    media_dir: Path | None = Field(
        default=None, description="Video files may only be read from under this directory."
    )
    allowed_networks: list[Network] = Field(
        default_factory=list,
        description="If set, camera hosts must resolve into one of these networks.",
    )


class Settings(BaseSettings):
    """The root of the configuration."""

    model_config = SettingsConfigDict(
        extra="forbid",
        env_prefix="MOTIONHUB_",
        env_nested_delimiter="__",
        validate_assignment=True,
        allow_inf_nan=False,
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    mqtt: MqttSettings | None = Field(default=None, description="Omit to run without MQTT.")
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    cameras: list[CameraSettings] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init values; environment variables win over it.
        return (env_settings, init_settings)

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: list[CameraSettings]) -> list[CameraSettings]:
        # A field validator, so that the error names `cameras` and its line, not the top level.
        ids = [c.id for c in cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique, repeated: {', '.join(dupes)}")
        return cameras

    @model_validator(mode="after")
    def _cameras_consistent(self) -> Settings:
        clash = entity_clash(self.cameras)
        if clash is not None:
            raise ValueError(clash)
        if len(self.cameras) > self.server.max_cameras:
            raise ValueError(
                f"{len(self.cameras)} cameras configured, server.max_cameras is "
                f"{self.server.max_cameras}"
            )
        return self

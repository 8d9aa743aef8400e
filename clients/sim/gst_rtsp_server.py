#!/usr/bin/python3
"""Serve H.264 files over RTSP, looped forever, without re-encoding.

Runs under the *system* Python (``/usr/bin/python3``), which has PyGObject and
GstRtspServer; it imports nothing but the standard library and ``gi``.

    /usr/bin/python3 gst_rtsp_server.py --port 8554 --mount cam1=/path/a.mp4 \\
        [--mount cam2=/path/b.mkv] [--host 127.0.0.1] [--user U] [--shared]

How looping works: each file is demuxed once at start-up into its H.264 access units
(SPS/PPS repeated before every keyframe), kept in memory. Each RTSP media pipeline is
``appsrc ! rtph264pay``; the appsrc's ``need-data`` callback hands out the stored
units in order and wraps around at the end, adding the clip length to the timestamps so
they keep increasing. No EOS ever reaches the client and nothing is re-encoded; the
RTSP server's sinks pace the stream to the clock.

The simulated camera is "live": the loop position is the wall clock (Unix time modulo
the clip length), and a client starts at the last keyframe before that position. So
every viewer sees the same part of the scene, also after a restart of the server, and
gets a picture at once. With ``--shared`` all clients of a mount share one pipeline
instead (and late joiners wait for the next keyframe).

Both RTP over UDP and RTP interleaved in the RTSP TCP connection work. With ``--user``
(and the password in ``$MOTIONHUB_SIM_RTSP_PASSWORD``) every mount requires Basic
credentials.

With ``--exit-on-stdin-eof`` the server exits when its stdin closes, so it never
outlives the process that started it, even one that was SIGKILLed.
"""

from __future__ import annotations

import argparse
import bisect
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LOAD_TIMEOUT_S = 60
PASSWORD_ENV = "MOTIONHUB_SIM_RTSP_PASSWORD"  # noqa: S105 (a variable name, no secret)
ROLE = "camera-user"


@dataclass
class Clip:
    """The access units of one H.264 file, with timestamps relative to the first one."""

    path: str
    caps: Gst.Caps | None = None
    units: list[GLib.Bytes] = field(default_factory=list)
    pts: list[int] = field(default_factory=list)
    dts: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    delta: list[bool] = field(default_factory=list)
    keyframes: list[int] = field(default_factory=list)
    length: int = 0  # ns, one loop


def fail(message: str) -> None:
    """Report ``message`` on stderr (the parent quotes it) and exit with status 1."""
    print(f"gst_rtsp_server: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def load_clip(path: str) -> Clip:
    """Demux ``path`` (MP4, MKV, raw H.264...) into byte-stream access units."""
    pipeline = Gst.parse_launch(
        "filesrc name=src ! parsebin ! h264parse config-interval=-1 ! "
        "video/x-h264,stream-format=byte-stream,alignment=au ! "
        "appsink name=sink sync=false max-buffers=0"
    )
    pipeline.get_by_name("src").set_property("location", path)
    sink = pipeline.get_by_name("sink")
    bus = pipeline.get_bus()
    clip = Clip(path)
    pipeline.set_state(Gst.State.PLAYING)
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            msg = bus.pop_filtered(Gst.MessageType.ERROR)
            if msg is not None:
                err, _debug = msg.parse_error()
                fail(f"cannot read {path} as H.264: {err.message}")
            sample = sink.emit("try-pull-sample", Gst.SECOND // 10)
            if sample is None:
                if sink.get_property("eos"):
                    break
                continue
            buf = sample.get_buffer()
            if clip.caps is None:
                clip.caps = sample.get_caps()
            ok, info = buf.map(Gst.MapFlags.READ)
            if not ok:
                fail(f"cannot map a buffer of {path}")
            try:
                clip.units.append(GLib.Bytes.new(info.data))
            finally:
                buf.unmap(info)
            clip.pts.append(buf.pts)
            clip.dts.append(buf.dts if buf.dts != Gst.CLOCK_TIME_NONE else buf.pts)
            clip.durations.append(buf.duration)
            clip.delta.append(bool(buf.get_flags() & Gst.BufferFlags.DELTA_UNIT))
        else:
            fail(f"timed out reading {path}")
    finally:
        pipeline.set_state(Gst.State.NULL)
    if not clip.units or clip.caps is None:
        fail(f"{path} holds no H.264 video")
    _normalise(clip)
    return clip


def _normalise(clip: Clip) -> None:
    """Make timestamps start at 0, fill in missing durations, find keyframes and length."""
    none = Gst.CLOCK_TIME_NONE
    if any(p == none for p in clip.pts):
        fail(f"{clip.path} has frames without timestamps")
    base = min(clip.dts[0], *clip.pts)
    clip.pts = [p - base for p in clip.pts]
    clip.dts = [d - base for d in clip.dts]
    steps = sorted(b - a for a, b in zip(sorted(clip.pts), sorted(clip.pts)[1:], strict=False))
    typical = steps[len(steps) // 2] if steps else Gst.SECOND // 15
    clip.durations = [d if d != none and d > 0 else typical for d in clip.durations]
    clip.length = max(p + d for p, d in zip(clip.pts, clip.durations, strict=True))
    clip.keyframes = [i for i, delta in enumerate(clip.delta) if not delta] or [0]


class Feeder:
    """Feeds one media pipeline's appsrc from a clip, looping with increasing timestamps."""

    def __init__(self, clip: Clip, appsrc: Gst.Element, position: int) -> None:
        self.clip = clip
        # Start on the last keyframe at or before the live position.
        starts = [clip.dts[k] for k in clip.keyframes]
        self.index = clip.keyframes[max(0, bisect.bisect_right(starts, position) - 1)]
        self.offset = -clip.dts[self.index]
        appsrc.set_property("caps", clip.caps)
        appsrc.set_property("format", Gst.Format.TIME)
        appsrc.set_property("is-live", False)
        appsrc.connect("need-data", self.on_need_data)

    def on_need_data(self, appsrc: Gst.Element, _length: int) -> None:
        """Push the next access unit (called on the appsrc's streaming thread)."""
        clip, i = self.clip, self.index
        buf = Gst.Buffer.new_wrapped_bytes(clip.units[i])
        buf.pts = clip.pts[i] + self.offset
        buf.dts = clip.dts[i] + self.offset
        buf.duration = clip.durations[i]
        if clip.delta[i]:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        self.index = i + 1
        if self.index == len(clip.units):
            self.index = 0
            self.offset += clip.length
        appsrc.emit("push-buffer", buf)


def make_factory(clip: Clip, shared: bool, auth: bool) -> GstRtspServer.RTSPMediaFactory:
    """A media factory that streams ``clip`` from the live position of each new pipeline."""
    factory = GstRtspServer.RTSPMediaFactory()
    # SPS/PPS already precede every keyframe (h264parse config-interval=-1 at load), so
    # the payloader must not insert them again: duplicates make FFmpeg see each
    # keyframe twice ("non monotonically increasing dts", corrupt frames).
    factory.set_launch("( appsrc name=src ! rtph264pay name=pay0 pt=96 )")
    factory.set_shared(shared)

    def on_configure(
        _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia
    ) -> None:
        appsrc = media.get_element().get_by_name("src")
        position = time.time_ns() % clip.length
        # The need-data handler holds the feeder for as long as the pipeline lives.
        Feeder(clip, appsrc, position)

    factory.connect("media-configure", on_configure)
    if auth:
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(ROLE, "media.factory.access", True)
        permissions.add_permission_for_role(ROLE, "media.factory.construct", True)
        factory.set_permissions(permissions)
    return factory


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line, plus the password from the environment."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
    parser.add_argument("--port", type=int, required=True, help="TCP port for RTSP.")
    parser.add_argument(
        "--mount",
        action="append",
        required=True,
        metavar="PATH=FILE",
        help="Serve FILE at rtsp://HOST:PORT/PATH (repeatable).",
    )
    parser.add_argument(
        "--user",
        default=None,
        help=f"Require Basic auth with this user; the password is read from ${PASSWORD_ENV}.",
    )
    parser.add_argument("--shared", action="store_true", help="One pipeline per mount.")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args(argv)
    # The password comes from the environment so it never shows in `ps` output.
    args.password = os.environ.get(PASSWORD_ENV)
    if args.user is not None and not args.password:
        parser.error(f"--user needs the password in ${PASSWORD_ENV}")
    return args


def main(argv: list[str]) -> int:
    """Load the clips, listen, and serve until SIGINT, SIGTERM or (optionally) stdin EOF."""
    args = parse_args(argv)
    Gst.init(None)
    clips: dict[str, Clip] = {}
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    server.set_backlog(64)
    auth_on = args.user is not None
    if auth_on:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", ROLE)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
    mounts = server.get_mount_points()
    for spec in args.mount:
        path, sep, file = spec.partition("=")
        if not sep or not path or not file:
            fail(f"--mount wants PATH=FILE, got {spec!r}")
        clip = clips.get(file) or load_clip(file)
        clips[file] = clip
        mounts.add_factory("/" + path.strip("/"), make_factory(clip, args.shared, auth_on))
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        fail(f"cannot listen on {args.host}:{args.port} (in use?)")
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, loop.quit)
    if args.exit_on_stdin_eof:

        def on_stdin(_fd: int, _cond: GLib.IOCondition) -> bool:
            if not os.read(sys.stdin.fileno(), 4096):
                loop.quit()
                return False
            return True

        GLib.io_add_watch(
            sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP, on_stdin
        )
    names = ", ".join(m.partition("=")[0] for m in args.mount)
    print(
        f"gst_rtsp_server: serving {names} on {args.host}:{args.port}", file=sys.stderr, flush=True
    )
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The camera URL policy: schemes, the media directory, network allow-list, FFmpeg fences."""

from __future__ import annotations

from pathlib import Path

import av
import av.error
import pytest
from ingest_harness import (
    camera,
    listener,
    redirecting_server,
    running,
    security,
    take_frames,
    wait_until,
)

from clients.sim import RtspCamera
from server.cameras import SourceError
from server.cameras.policy import FILE_FORMATS, PROTOCOL_WHITELIST, plan_source
from server.settings_file import ConfigError, parse_settings


@pytest.mark.parametrize(
    "url",
    [
        "concat:/etc/passwd|/etc/hosts",
        "subfile,,start,0,end,100,,:/etc/passwd",
        "ftp://127.0.0.1/cam.mp4",
        "data:video/mp4;base64,AAAA",
        "hls+http://127.0.0.1/x.m3u8",
        "udp://127.0.0.1:5000",
        "relative/path.mp4",
    ],
)
def test_unsupported_scheme_is_rejected_when_the_config_is_loaded(url: str) -> None:
    text = f"cameras:\n  - id: cam\n    url: {url!r}\n"
    with pytest.raises(ConfigError) as info:
        parse_settings(text, "motionhub.yaml")
    assert "cameras[0].url" in str(info.value)
    assert "unsupported scheme" in str(info.value)


@pytest.mark.parametrize(
    ("url", "kind", "planned"),
    [
        ("rtsp://127.0.0.1/s", "auto", "rtsp"),
        ("rtsps://127.0.0.1/s", "rtsp", "rtsp"),
        ("http://127.0.0.1/video.cgi", "auto", "http"),
        ("https://127.0.0.1/video.cgi", "mjpeg", "mjpeg"),
        ("http://127.0.0.1/snap.jpg", "snapshot", "snapshot"),
        ("/dev/video0", "auto", "v4l2"),
        ("/dev/video12", "v4l2", "v4l2"),
    ],
)
def test_kind_follows_the_scheme(url: str, kind: str, planned: str) -> None:
    plan = plan_source(url, kind, security())  # type: ignore[arg-type]
    assert plan.kind == planned


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("rtsp://127.0.0.1/s", "mjpeg"),
        ("http://127.0.0.1/s", "rtsp"),
        ("/dev/video0", "file"),
        ("rtsp://127.0.0.1/s", "v4l2"),
    ],
)
def test_kind_that_does_not_fit_the_scheme_is_refused(url: str, kind: str) -> None:
    with pytest.raises(SourceError, match=r"cannot be used with|V4L2 device") as info:
        plan_source(url, kind, security())  # type: ignore[arg-type]
    assert info.value.retry is False


async def test_files_need_a_media_dir(media_dir: Path) -> None:
    async with running(camera(str(media_dir / "clip.mp4")), security(None)) as reader:
        await wait_until(reader, lambda s: s.state == "offline", 3, "offline")
        assert reader.status.last_error == (
            "video files are disabled: set security.media_dir to the folder they live in"
        )


@pytest.mark.parametrize("how", ["outside", "dotdot", "symlink", "file-url"])
async def test_files_outside_media_dir_are_refused(
    tmp_path: Path, media_dir: Path, how: str
) -> None:
    outside = tmp_path / "outside.mp4"
    outside.write_bytes((media_dir / "clip.mp4").read_bytes())
    if how == "outside":
        url = str(outside)
    elif how == "dotdot":
        url = f"{media_dir}/../outside.mp4"
    elif how == "symlink":
        (media_dir / "link.mp4").symlink_to(outside)
        url = str(media_dir / "link.mp4")
    else:
        url = f"file://{outside}"
    async with running(camera(url), security(media_dir)) as reader:
        await wait_until(reader, lambda s: s.state == "offline", 3, "offline")
        assert "is outside security.media_dir" in (reader.status.last_error or "")
        assert reader.latest() is None


async def test_file_url_inside_media_dir_plays(media_dir: Path) -> None:
    async with running(camera(f"file://{media_dir}/clip.mp4"), security(media_dir)) as reader:
        await take_frames(reader, 2)


def _hls_escape(media_dir: Path, tmp_path: Path) -> Path:
    """An HLS playlist inside media_dir that makes FFmpeg read a video *outside* it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    with av.open(str(media_dir / "clip.mp4")) as src, av.open(str(outside / "seg.ts"), "w") as ts:
        stream = src.streams.video[0]
        out = ts.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.size:
                packet.stream = out
                ts.mux(packet)
    hls = media_dir / "evil.m3u8"
    hls.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:5\n#EXTINF:4.0,\n"
        "../outside/seg.ts\n#EXT-X-ENDLIST\n"
    )
    return hls


async def test_playlist_in_media_dir_cannot_reach_outside(media_dir: Path, tmp_path: Path) -> None:
    playlist = _hls_escape(media_dir, tmp_path)
    # Plain FFmpeg follows the playlist out of the media directory...
    with av.open(str(playlist)) as unfenced:
        assert unfenced.format.name == "hls"
        assert next(unfenced.decode(video=0)).width == 640
    # ...the fences the file source uses refuse it...
    fenced = {"protocol_whitelist": PROTOCOL_WHITELIST["file"], "format_whitelist": FILE_FORMATS}
    with pytest.raises(av.error.ArgumentError):
        av.open(str(playlist), container_options=fenced)
    # ...and so the camera reports why and never shows a frame.
    async with running(camera(str(playlist)), security(media_dir)) as reader:
        await wait_until(reader, lambda s: s.state == "offline", 3, "offline")
        assert reader.status.last_error == (
            "evil.m3u8 is not a plain video file "
            "(playlists, concat scripts and image sequences are refused)"
        )
        assert reader.latest() is None


async def test_http_source_cannot_read_local_files(media_dir: Path) -> None:
    """A camera that redirects to file: gets nowhere, whichever client follows it."""
    target = f"file://{media_dir}/clip.mp4"
    # FFmpeg refuses it with the mjpeg kind's whitelist (it would refuse a concat: or
    # subfile: URL the same way).
    with redirecting_server(target) as server:
        port = server.server_address[1]
        with pytest.raises(av.error.ArgumentError):
            av.open(
                f"http://127.0.0.1:{port}/cam",
                format="mpjpeg",
                container_options={"protocol_whitelist": PROTOCOL_WHITELIST["mjpeg"]},
                timeout=3,
            )
        for kind, error in [
            (
                "mjpeg",
                f"127.0.0.1:{port} redirected to or asked for a protocol that is not allowed",
            ),
            ("auto", f"127.0.0.1:{port} redirected to a URL scheme that is not allowed"),
            ("snapshot", f"127.0.0.1:{port} redirected to a URL scheme that is not allowed"),
        ]:
            settings = camera(f"http://127.0.0.1:{port}/cam", kind=kind)
            async with running(settings, security(media_dir)) as reader:
                await wait_until(reader, lambda s: s.state == "offline", 3, f"offline ({kind})")
                assert reader.status.last_error == error
                assert reader.latest() is None
        assert server.hits >= 3  # type: ignore[attr-defined]


async def test_allowed_networks_refuse_before_connecting() -> None:
    with listener() as sock:
        port = sock.getsockname()[1]
        settings = camera(f"rtsp://127.0.0.1:{port}/cam")
        async with running(settings, security(networks=("10.0.0.0/8",))) as reader:
            await wait_until(reader, lambda s: s.state == "offline", 3, "offline")
            assert reader.status.last_error == (
                "127.0.0.1 resolves to 127.0.0.1, outside security.allowed_networks"
            )
        # Nobody ever knocked on the camera's port: no connection is waiting.
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.accept()


async def test_allowed_networks_let_cameras_inside_them_through(rtsp_camera: RtspCamera) -> None:
    sec = security(networks=("192.168.0.0/16", "127.0.0.0/8"))
    async with running(camera(rtsp_camera.url), sec) as reader:
        await take_frames(reader, 2)


async def test_allowed_networks_are_checked_on_every_redirect(media_dir: Path) -> None:
    # 127.0.0.1 is allowed, the redirect target 127.0.0.2 (also loopback) is not.
    with redirecting_server("http://127.0.0.2:9/snap.jpg") as server:
        port = server.server_address[1]
        settings = camera(f"http://127.0.0.1:{port}/snap.jpg", kind="snapshot")
        async with running(settings, security(networks=("127.0.0.1/32",))) as reader:
            await wait_until(reader, lambda s: s.state == "offline", 3, "offline")
            assert reader.status.last_error == (
                "127.0.0.2 resolves to 127.0.0.2, outside security.allowed_networks"
            )

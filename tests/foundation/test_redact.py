"""Credentials are masked wherever a URL or an error message is turned into text."""

from __future__ import annotations

import json
import logging

import pytest

from server.logs import JsonFormatter, TextFormatter
from server.redact import masked_credentials, redact_text, redact_url, secrets


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:hunter22@10.0.0.5:554/s1", "rtsp://***:***@10.0.0.5:554/s1"),
        ("rtsp://admin@10.0.0.5/s1", "rtsp://***@10.0.0.5/s1"),
        (
            "http://cam/snap.cgi?user=admin&pwd=hunter22&ch=1",
            "http://cam/snap.cgi?user=***&pwd=***&ch=1",
        ),
        (
            "http://cam/snap.jpg?apikey=k1&api_key=k2&access_token=k3&X-Auth-Token=k4&ch=1",
            "http://cam/snap.jpg?apikey=***&api_key=***&access_token=***&X-Auth-Token=***&ch=1",
        ),
        ("http://cam/a?client_secret=s1&channel=2", "http://cam/a?client_secret=***&channel=2"),
        (
            "http://cam/videostream.cgi?loginuse=admin&loginpas=S20x&page=1&p=2",
            "http://cam/videostream.cgi?loginuse=admin&loginpas=***&page=1&p=2",
        ),
        ("http://cam/x?pass%77ord=S19x", "http://cam/x?pass%77ord=***"),
        ("http://cam/x?PW=S7x&psw=S8x&usr_pwd=S9x", "http://cam/x?PW=***&psw=***&usr_pwd=***"),
        ("http://cam/x?sig=S1x&X-Amz-Signature=S2x", "http://cam/x?sig=***&X-Amz-Signature=***"),
        (
            "rtsp://cam/user=admin_password=S13x_channel=1_stream=0.sdp",
            "rtsp://cam/user=***_password=***_channel=1_stream=0.sdp",
        ),
        ("http://cam/x;password=S16x;ch=1", "http://cam/x;password=***;ch=1"),
        ("http://cam/x?password=a/b?c&ch=1", "http://cam/x?password=***&ch=1"),
        ("rtsp://10.0.0.5/s1", "rtsp://10.0.0.5/s1"),
        ("/dev/video0", "/dev/video0"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_inside_messages() -> None:
    msg = "Connection to tcp://x failed for rtsp://admin:hunter22@10.0.0.5:554/s1: refused"
    out = redact_text(msg)
    assert "hunter22" not in out
    assert "admin" not in out
    assert "10.0.0.5:554/s1" in out


def test_registered_secret_is_scrubbed_even_alone() -> None:
    secrets.add("Sup3r-Secret-Value")
    assert redact_text("decoded password Sup3r-Secret-Value rejected") == (
        "decoded password *** rejected"
    )


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_log_formatters_redact(formatter: logging.Formatter) -> None:
    record = logging.makeLogRecord(
        {"msg": "opening %s", "args": ("rtsp://u:pa55word@h/s",), "levelname": "INFO", "name": "x"}
    )
    out = formatter.format(record)
    assert "pa55word" not in out
    assert "h/s" in out


def test_json_log_line_stays_json_when_a_credential_ends_a_value() -> None:
    """A credential parameter at the end of a message or field is masked without taking the
    closing quote (and the rest of the line) with it."""
    record = logging.makeLogRecord(
        {
            "msg": "camera added url=%s",
            "args": ("http://cam/x?password=S21x",),
            "levelname": "INFO",
            "name": "x",
            "url": "http://cam/y?token=S22x",
            "attempts": 3,
        }
    )
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "camera added url=http://cam/x?password=***"
    assert doc["url"] == "http://cam/y?token=***"
    assert doc["attempts"] == 3


@pytest.mark.parametrize(
    "url",
    [
        "http://cam/videostream.cgi?loginuse=admin&loginpas=S20x",
        "http://cam/x?pass%77ord=S19x",
        "rtsp://cam/user=admin_password=S13x_channel=1_stream=0.sdp",
        "http://cam/x;password=S16x",
        "http://cam/x?pw=S7x&psw=S8x",
    ],
)
def test_the_api_and_the_log_mask_a_password_alike_and_the_mask_is_recognised(url: str) -> None:
    shown = redact_url(url)
    assert "S1" not in shown
    assert "S2" not in shown
    assert "S7" not in shown
    assert redact_text(f"camera added url={url}") == f"camera added url={shown}"
    assert masked_credentials(shown)
    assert not masked_credentials(url)
    assert not masked_credentials("http://cam/x?page=***&p=***&channel=***")

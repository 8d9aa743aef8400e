"""Credentials are masked wherever a URL or an error message is turned into text."""

from __future__ import annotations

import logging

import pytest

from server.logs import JsonFormatter, TextFormatter
from server.redact import redact_text, redact_url, secrets


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

"""The server and broker URLs the clients are given, checked before any connection."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

import click

from server.config import check_url_authority
from server.redact import redact_url

__all__ = ["checked_url"]


def checked_url(url: str, schemes: tuple[str, ...], expected: str) -> SplitResult:
    """``url`` split, or a ``click.BadParameter`` naming what is wrong (a scheme not in
    ``schemes``, no host, a port outside 1..65535, credentials that cannot be parsed), with
    the URL shown as the server's logs show it: credentials masked."""
    shown = redact_url(url)
    try:
        check_url_authority(url)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}: {shown!r}") from None
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise click.BadParameter(f"expected {expected}, got {shown!r}")
    return parts

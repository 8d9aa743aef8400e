"""Credential redaction for camera and broker URLs.

Camera URLs routinely carry ``user:password@``. Every place that turns a URL or an
error message into text for a human or another system (logs, status, API responses,
metrics, MQTT payloads) goes through this module, so there is exactly one piece of
code to get right.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SecretRegistry",
    "hidden_userinfo",
    "masked_credentials",
    "redact_text",
    "redact_url",
    "secrets",
]

REDACTED = "***"

# scheme://user:pass@host or scheme://user@host, as it appears inside free text
# (FFmpeg and socket error messages quote the URL they failed on).
_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
# Query parameters that cameras use for credentials (Hikvision, Reolink, Foscam...), also
# with a prefix (apikey, api_key, access_token, x-auth-token).
_SECRET_QUERY = re.compile(
    r"(?i)(?<![A-Za-z0-9_-])([A-Za-z0-9_-]*"
    r"(?:password|passwd|pwd|pass|token|auth|key|secret|user|username))=([^&\s]+)"
)


def redact_url(url: str) -> str:
    """Return ``url`` with any password, user name or credential query parameter masked.

    >>> redact_url("rtsp://admin:hunter2@10.0.0.5:554/s1")
    'rtsp://***:***@10.0.0.5:554/s1'
    """
    loose = hidden_userinfo(url)
    if loose is not None:
        # Credentials urlsplit cannot see (an unencoded '/', '?' or '#' in the password
        # moves the '@' out of the host part): everything up to the last '@' goes.
        scheme, _, rest = url.partition("://")
        tail = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}={REDACTED}", rest.rpartition("@")[2])
        return f"{scheme}://{REDACTED}@{tail}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        masked = f"{REDACTED}:{REDACTED}" if ":" in userinfo else REDACTED
        netloc = f"{masked}@{hostport}"
    query = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}={REDACTED}", parts.query)
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment))


def masked_credentials(url: str) -> bool:
    """Whether ``url`` carries the mask :func:`redact_url` puts in place of a credential (a
    user name, password or credential query parameter that is ``***``): a URL copied from
    what the server showed, which no camera would accept.

    >>> masked_credentials("rtsp://***:***@10.0.0.5:554/s1")
    True
    """
    try:
        parts = urlsplit(url)
        userinfo = (parts.username, parts.password)
    except ValueError:
        return False
    if REDACTED in userinfo:
        return True
    return any(m.group(2) == REDACTED for m in _SECRET_QUERY.finditer(parts.query))


def hidden_userinfo(url: str) -> str | None:
    """The text between ``://`` and the last ``@`` of ``url`` when urlsplit would not take it
    for the user information (its host part has no ``@``: an unencoded ``/``, ``?`` or ``#``
    in the password ended it early), else None."""
    _, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return None
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        netloc = ""
    if "@" in netloc:
        return None
    return rest.rpartition("@")[0]


class SecretRegistry:
    """Known secret strings (passwords, tokens) that must never appear in output.

    URL credentials are caught by pattern, but a password can also surface on its
    own, e.g. percent-decoded in an FFmpeg message. Configured secrets are
    registered here at start-up and scrubbed from any text passed to
    :func:`redact_text`.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        """Register ``secret``; very short strings are ignored to avoid mangling text."""
        if secret and len(secret) >= 3:
            self._secrets.add(secret)

    def add_url(self, url: str | None) -> None:
        """Register the user name and password carried by ``url``, if any."""
        if not url:
            return
        loose = hidden_userinfo(url)
        if loose is not None:
            password: str | None = loose.partition(":")[2] or None
        else:
            try:
                password = urlsplit(url).password
            except ValueError:
                return
        if password:
            self.add(password)
            self.add(unquote(password))
            # What a parser that stops at '/', '?' or '#' would take for it (and show in
            # its error message, as urlsplit's "Port could not be cast" does).
            self.add(re.split(r"[/?#]", password, maxsplit=1)[0])

    def scrub(self, text: str) -> str:
        """Replace every registered secret in ``text``."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


secrets = SecretRegistry()
"""The process-wide registry used by :func:`redact_text` and the log formatter."""


def redact_text(text: str) -> str:
    """Mask URL credentials and registered secrets anywhere inside free text."""
    text = _USERINFO_IN_TEXT.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    text = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return secrets.scrub(text)

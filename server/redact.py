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
# A ``name=value`` credential anywhere in a URL or in free text: in the query, in ;params or
# in a path segment (Dahua/XMeye DVRs: ``/user=admin_password=pw_channel=1``). A value ends
# at '&', ';', '#' or white space, or where the next ``name=`` begins after '/', '?' or '_'.
_PARAM = re.compile(
    r"(?P<name>[A-Za-z0-9_%.-]+)="
    r"(?P<value>(?:(?![/?_][A-Za-z0-9_%.-]+=)[^&;#\s])+)"
)
# Parameter names that carry a credential, compared after percent-decoding and case-folding,
# also with a prefix (loginpas, usr_pwd, api_key, access_token, X-Amz-Signature...).
_SECRET_NAME = re.compile(
    r"(?:password|passwort|passwd|pwd|pass|pas|psw|pw|token|auth|key|secret|credentials?"
    r"|user|username|sig|signature)$"
)


def _secret_name(name: str) -> bool:
    return _SECRET_NAME.search(unquote(name).casefold()) is not None


def _mask_params(text: str) -> str:
    """``text`` with the value of every credential parameter replaced by the mask."""
    return _PARAM.sub(
        lambda m: f"{m['name']}={REDACTED}" if _secret_name(m["name"]) else m[0], text
    )


def redact_url(url: str) -> str:
    """Return ``url`` with any password, user name or credential parameter masked (in the
    query, in ;params or in a ``name=value`` path segment; see :func:`redact_text`).

    >>> redact_url("rtsp://admin:hunter2@10.0.0.5:554/s1")
    'rtsp://***:***@10.0.0.5:554/s1'
    """
    loose = hidden_userinfo(url)
    if loose is not None:
        # Credentials urlsplit cannot see (an unencoded '/', '?' or '#' in the password
        # moves the '@' out of the host part): everything up to the last '@' goes.
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{REDACTED}@{_mask_params(rest.rpartition('@')[2])}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        masked = f"{REDACTED}:{REDACTED}" if ":" in userinfo else REDACTED
        netloc = f"{masked}@{hostport}"
    path, query, fragment = (_mask_params(t) for t in (parts.path, parts.query, parts.fragment))
    return urlunsplit(SplitResult(parts.scheme, netloc, path, query, fragment))


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
    rest = "&".join((parts.path, parts.query, parts.fragment))
    return any(m["value"] == REDACTED and _secret_name(m["name"]) for m in _PARAM.finditer(rest))


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
    text = _mask_params(text)
    return secrets.scrub(text)

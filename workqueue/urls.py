"""Broker URLs: parse them into pika parameters, say where parameters point, and print them
without their password (whatever characters it holds)."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

import pika

from workqueue.errors import BadUrl

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def _split_userinfo(url):
    """(prefix, userinfo, rest) of a URL as a password hider must see it: the user info is
    everything between ``scheme://`` and the LAST ``@`` (so a password holding unencoded
    ``/ ? # @ :`` or spaces is still inside it); ``None`` when there is no ``@`` at all."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" not in rest:
        return None
    userinfo, host = rest.rsplit("@", 1)
    return scheme + sep, userinfo, host


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (safe for logs and error messages).

    Works on any text a user may type, not only on well-formed URLs: whatever lies between
    the user name's ``:`` and the last ``@`` is hidden, so unencoded ``/ ? # @ :`` or spaces in
    a password do not move part of it into the host, path or fragment."""
    if not isinstance(url, str):
        return "<unprintable URL>"
    parts = _split_userinfo(url)
    if parts is None:
        return url
    prefix, userinfo, host = parts
    if ":" not in userinfo:
        return url                                  # a user name alone, no password
    return f"{prefix}{userinfo.split(':', 1)[0]}:***@{host}"


def secrets_of(url: str) -> set[str]:
    """The password of ``url`` as typed and as decoded (for scrubbing text that may hold it);
    empty when the URL has none."""
    parts = _split_userinfo(url) if isinstance(url, str) else None
    if parts is None or ":" not in parts[1]:
        return set()
    typed = parts[1].split(":", 1)[1]
    return {s for s in (typed, urllib.parse.unquote(typed)) if s}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret in ``secrets`` replaced by ``***``. A secret of under four
    characters is replaced only where it stands alone (not inside a longer word), so that a
    one-letter password does not garble the message around it."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    return text


def parameters_from_url(url: str, heartbeat: int | None = None, **overrides: Any) -> pika.URLParameters:
    """pika.URLParameters for ``url``, validated, with optional heartbeat (seconds).

    Raises BadUrl with a one-line message (without the password) when the URL is malformed.
    A password or user name must percent-encode ``/``, ``?`` and ``#`` (``%2F``, ``%3F``,
    ``%23``); an ``@`` after the host is refused as ambiguous rather than guessed at.
    """
    if not url or not isinstance(url, str):
        raise BadUrl("empty broker URL")
    shown = redact(url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("amqp", "amqps"):
        raise BadUrl(f"malformed broker URL {shown!r}: it must start with amqp:// or amqps://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" not in authority and "@" in rest:
        raise BadUrl(f"malformed broker URL {shown!r}: an '@' after the host; percent-encode "
                     f"'/', '?' and '#' in a user name or password (%2F, %3F, %23), '@' in a vhost (%40)")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port                        # raises ValueError on a bad port
        host = parts.hostname
    except ValueError:
        # (urllib's message quotes the offending text, which may be part of a password)
        raise BadUrl(f"malformed broker URL {shown!r}: the host or port cannot be read "
                     f"(port: a number up to 65535; IPv6 address: in [brackets])") from None
    if not host:
        raise BadUrl(f"malformed broker URL {shown!r}: no host")
    if port == 0:
        raise BadUrl(f"malformed broker URL {shown!r}: port 0")
    try:
        params = pika.URLParameters(url)
    except Exception as exc:  # pika raises ValueError and friends for odd query strings
        raise BadUrl(f"malformed broker URL {shown!r}: {type(exc).__name__} in its options") from None
    if heartbeat is not None:
        params.heartbeat = heartbeat
    for name, value in overrides.items():
        setattr(params, name, value)
    return params


def describe(params):
    """Where ``params`` point, for messages: user@host:port/vhost (never the password)."""
    if isinstance(params, (list, tuple)):
        return " or ".join(describe(p) for p in params)
    user = getattr(params.credentials, "username", "?")
    return f"{user}@{params.host}:{params.port}/{params.virtual_host}"

"""Broker URLs: parse them into pika parameters, and print them without their password."""

from __future__ import annotations

import logging
import re
import socket
import urllib.parse
from collections.abc import Iterable
from typing import Any

import pika
import pika.exceptions

from workqueue.errors import AccessRefused, BadUrl, BrokerUnreachable, QueueRefused

log = logging.getLogger(__name__)

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


def candidates(params):
    """The brokers to try, in order: ``params`` may be one ConnectionParameters or several
    (the nodes of a cluster)."""
    items = list(params) if isinstance(params, (list, tuple)) else [params]
    if not items:
        raise BadUrl("no broker URL given")
    return items


class ConnectionLost(BrokerUnreachable):
    """An open connection was lost (not a broker that did not answer): the failover loop
    leaves it to its caller, which reconnects after a back-off, to another node first."""


class Failover:
    """The brokers a client may use and the one it uses now: the one failover loop of the
    Producer and the Worker. ``params`` is one pika ConnectionParameters or several."""

    def __init__(self, params):
        self.candidates = candidates(params)
        self.current = 0

    @property
    def params(self):
        """The ConnectionParameters of the broker in use (or to be tried first)."""
        return self.candidates[self.current]

    def skip(self):
        """After a lost connection: try another broker first next time."""
        self.current = (self.current + 1) % len(self.candidates)

    def first_answering(self, attempt):
        """``attempt(params)`` on each broker in turn, from the current one, which follows; the
        first that does not raise BrokerUnreachable wins. A refusal (credentials, queue) or a
        lost connection is raised at once; when none answers, the last one's error is."""
        first = self.current
        for offset in range(len(self.candidates)):
            self.current = (first + offset) % len(self.candidates)
            try:
                return attempt(self.params)
            except ConnectionLost:
                raise
            except BrokerUnreachable as exc:
                if offset == len(self.candidates) - 1:
                    raise
                log.info("%s; trying the next broker", exc)
        raise AssertionError("unreachable")          # pragma: no cover


class Backoff:
    """Delays between reconnection attempts: ``initial``, doubling up to ``maximum``."""

    def __init__(self, initial=0.2, maximum=1.0):
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def reset(self):
        self._next = self.initial

    def next(self):
        delay, self._next = self._next, min(self._next * 2, self.maximum)
        return delay


def unanswered_declaration(queue, timeout, params):
    """The message for a declaration the broker did not answer (Producer and Worker)."""
    return (f"no answer within {timeout:g} s to declaring queue {queue!r} at {describe(params)} "
            f"(RabbitMQ 4 does not answer while a classic queue's node is down)")


def describe(params):
    """Where ``params`` point, for messages: user@host:port/vhost (never the password)."""
    if isinstance(params, (list, tuple)):
        return " or ".join(describe(p) for p in params)
    user = getattr(params.credentials, "username", "?")
    return f"{user}@{params.host}:{params.port}/{params.virtual_host}"


def translate(exc, params):
    """Turn a pika connection/channel exception into the matching WorkqueueError."""
    where = describe(params)
    if isinstance(exc, pika.exceptions.ProbableAuthenticationError) or isinstance(
        exc, pika.exceptions.AuthenticationError
    ):
        return AccessRefused(f"ACCESS_REFUSED by the broker at {where}: wrong user name or password")
    if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
        return AccessRefused(f"ACCESS_REFUSED by the broker at {where}: no access to the virtual host")
    if isinstance(exc, pika.exceptions.ConnectionClosedByBroker):
        if exc.reply_code == 403:
            return AccessRefused(f"ACCESS_REFUSED by the broker at {where}: {exc.reply_text}")
        return BrokerUnreachable(f"the broker at {where} closed the connection: {exc.reply_code} {exc.reply_text}")
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
        return QueueRefused(f"the broker at {where} refused: {exc.reply_code} {exc.reply_text}", exc.reply_code)
    if isinstance(exc, pika.exceptions.IncompatibleProtocolError):
        return BrokerUnreachable(f"no AMQP broker answered at {where} (incompatible protocol or still starting)")
    if isinstance(exc, (pika.exceptions.AMQPConnectionError, OSError)):
        return BrokerUnreachable(f"cannot reach the broker at {where}: {reason(exc)}")
    return None


def open_error(exc, params):
    """The WorkqueueError for a connection that could not be opened, whatever pika raised."""
    return translate(exc, params) or BrokerUnreachable(f"cannot reach the broker at {describe(params)}: {reason(exc)}")


def reason(exc):
    """Why a connection could not be made, in words: connection refused, name not resolved,
    timed out... (pika wraps the socket's error in one or more workflow exceptions)."""
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (nothing listens there)"
        if isinstance(cause, socket.gaierror):
            return f"host name not resolved ({cause.strerror or cause})"
        if isinstance(cause, (socket.timeout, TimeoutError)) or type(cause).__name__.endswith("Timeout"):
            return "timed out"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the peer"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[0].lower() + cause.strerror[1:]
    text = " ".join(str(exc).split())
    return text if text and not text.startswith("<") else type(exc).__name__


def _causes(exc, depth=0):
    """``exc`` and every exception inside it: args, the ``exceptions`` of a workflow failure,
    ``exception`` of a connector error, and __cause__ / __context__."""
    if exc is None or depth > 8:
        return
    yield exc
    inner = list(getattr(exc, "exceptions", None) or [])
    inner += [getattr(exc, "exception", None), exc.__cause__, exc.__context__]
    inner += [a for a in getattr(exc, "args", ()) if isinstance(a, BaseException)]
    for item in inner:
        if isinstance(item, BaseException) and item is not exc:
            yield from _causes(item, depth + 1)


#: "inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received none but current is
#: the value 'quorum' of type 'longstr'" (and 'durable': "received 'true' but current is 'false'")
_INEQUIVALENT = re.compile(r"inequivalent arg '(?P<arg>[^']+)'.*current is (?:the value )?(?P<current>'[^']*'|none)")


def existing_queue(reply_text):
    """What a 406 says of the existing queue: {'x-queue-type': 'quorum'} or {'durable': False},
    or {} when it says nothing we know."""
    m = _INEQUIVALENT.search(reply_text or "")
    if not m:
        return {}
    current = m.group("current").strip("'")
    if m.group("arg") == "x-queue-type":
        return {"x-queue-type": "classic" if current == "none" else current}
    if m.group("arg") == "durable":
        return {"durable": current == "true"}
    return {}

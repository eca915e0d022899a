"""Broker URLs: parse them into pika parameters, and print them without their password."""

import logging
import urllib.parse

import pika
import pika.exceptions

from workqueue.errors import AccessRefused, BadUrl, BrokerUnreachable, QueueRefused

log = logging.getLogger(__name__)

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def redact(url):
    """The URL with its password replaced by ``***`` (safe for logs and error messages)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0] + ":***"
    return urllib.parse.urlunsplit(parts._replace(netloc=userinfo + "@" + netloc[1]))


def parameters_from_url(url, heartbeat=None, **overrides):
    """pika.URLParameters for ``url``, validated, with optional heartbeat (seconds).

    Raises BadUrl with a one-line message (without the password) when the URL is malformed.
    """
    if not url or not isinstance(url, str):
        raise BadUrl("empty broker URL")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise BadUrl(f"malformed broker URL {redact(url)!r}: {exc}") from None
    if parts.scheme not in ("amqp", "amqps"):
        raise BadUrl(f"malformed broker URL {redact(url)!r}: scheme must be amqp:// or amqps://")
    if not parts.hostname:
        raise BadUrl(f"malformed broker URL {redact(url)!r}: no host")
    try:
        params = pika.URLParameters(url)
    except Exception as exc:  # pika raises ValueError and friends for odd query strings
        raise BadUrl(f"malformed broker URL {redact(url)!r}: {type(exc).__name__}") from None
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
        detail = _first_cause(exc)
        return BrokerUnreachable(f"cannot reach the broker at {where}: {detail}")
    return None


def _first_cause(exc):
    """A short description of what lies under a pika AMQPConnectionError."""
    args = getattr(exc, "args", ())
    while args and isinstance(args[0], Exception):
        inner = args[0]
        if isinstance(inner, pika.exceptions.AMQPConnectionError) and inner.args:
            args = inner.args
            continue
        return f"{type(inner).__name__}: {inner}".rstrip(": ")
    return str(exc) or type(exc).__name__


def connect(params):
    """A pika BlockingConnection, or a WorkqueueError with one line saying why not."""
    try:
        return pika.BlockingConnection(params)
    except Exception as exc:
        error = translate(exc, params)
        if error is None:
            raise
        raise error from None


def connect_any(params, first=0):
    """(index, BlockingConnection) to the first broker of ``candidates(params)`` that answers,
    trying them in turn from ``first``. A refusal (wrong password, no vhost) ends the search at
    once; when none answers, the error of the last one tried is raised."""
    options = candidates(params)
    error = None
    for offset in range(len(options)):
        index = (first + offset) % len(options)
        try:
            return index, connect(options[index])
        except BrokerUnreachable as exc:
            if len(options) > 1:
                log.info("%s; trying the next broker", exc)
            error = exc
    raise error

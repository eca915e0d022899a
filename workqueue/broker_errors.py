"""pika's exceptions and the broker's refusals, in the library's terms: each becomes the
WorkqueueError (with its exit code) that says in one line what happened and where."""

from __future__ import annotations

import re
import socket

import pika.exceptions

from workqueue.errors import AccessRefused, BrokerUnreachable, QueueRefused
from workqueue.urls import describe


def unanswered_declaration(queue, timeout, params):
    """The message for a declaration the broker did not answer (Producer and Worker)."""
    return (f"no answer within {timeout:g} s to declaring queue {queue!r} at {describe(params)} "
            f"(RabbitMQ 4 does not answer while a classic queue's node is down)")


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


def queue_refused(queue, reason):
    """The QueueRefused for a channel the broker closed while ``queue`` was declared (406
    PRECONDITION_FAILED, 404, 541...), with what the broker said of the queue as it exists."""
    return QueueRefused(f"the broker refused queue {queue!r}: {reason.reply_code} {reason.reply_text}",
                        reason.reply_code, existing_queue(reason.reply_text))

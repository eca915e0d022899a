"""One send() for all the frames waiting on a connection, instead of one send() per frame.

pika's asynchronous transport sends each buffered frame with its own ``socket.send``: three
system calls per published task (method, header, body) and one per ack. Joining what is
waiting into one buffer first is most of the difference between pipelined confirms and pika's
unconfirmed floor. Applied per connection (workqueue's own), only to pika's plain-TCP
transport; on any other transport, or a pika whose internals differ, it does nothing.
"""

import logging

from workqueue.errors import BrokerUnreachable
from workqueue.urls import describe

log = logging.getLogger(__name__)

#: Bytes joined into one send at most (a partial send re-queues the rest).
MAX_JOIN = 1 << 20


def _produce_joined(transport):
    buffers = transport._tx_buffers
    while buffers:
        if len(buffers) > 1:
            joined, size = [], 0
            while buffers and size < MAX_JOIN:
                chunk = buffers.popleft()
                joined.append(chunk)
                size += len(chunk)
            buffers.appendleft(b"".join(joined))
        sent = transport._sigint_safe_send(transport._sock, buffers[0])   # raises on EAGAIN: kept
        chunk = buffers.popleft()
        if sent < len(chunk):
            buffers.appendleft(chunk[sent:])
        transport._tx_buffered_byte_count -= sent


def coalesce_writes(connection):
    """Make ``connection`` (a pika SelectConnection or BlockingConnection) join its writes."""
    impl = getattr(connection, "_impl", connection)
    transport = getattr(impl, "_transport", None)
    try:
        from pika.adapters.utils.io_services_utils import _AsyncPlaintextTransport
    except ImportError:  # pragma: no cover - another pika
        return False
    if type(transport) is not _AsyncPlaintextTransport or not hasattr(transport, "_tx_buffers"):
        return False
    transport._produce = lambda: _produce_joined(transport)
    return True


def send_immediately(connection):
    """Make ``connection`` send a write at once when nothing is waiting to be sent, instead of
    waiting for the next writable event of the I/O loop (one loop turn and two epoll_ctl calls
    per write). For a worker, whose writes are single acks that the broker waits for before it
    delivers the next task (prefetch 1); a write that does not go out whole is buffered as usual,
    and joined with what follows (coalesce_writes)."""
    if not coalesce_writes(connection):
        return False
    transport = getattr(connection, "_impl", connection)._transport
    buffered_write = transport.write

    def write(data):
        if transport._state == transport._STATE_ACTIVE and not transport._tx_buffers:
            try:
                sent = transport._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0           # a real error: the buffered path reports it
            if sent == len(data):
                return
            data = data[sent:]
        buffered_write(data)
    transport.write = write
    return True


#: How pika 1.4 words its check that a connected socket is still connected (io_services_utils'
#: _AsyncStreamConnector); the OSError it caught is the ValueError's __context__.
_NOT_CONNECTED = "Expected connected socket, but getpeername() failed"


def start_loop(connection, params):
    """Run ``connection``'s I/O loop (a SelectConnection's) until it is stopped.

    A peer that accepts the TCP connection and resets it before pika's next look at the socket
    (docker-proxy does, while the broker behind it is down) makes pika 1.4 raise ValueError out
    of the I/O loop instead of calling the connection's on_open_error_callback: a failed connect
    that would end the caller. It is raised as the BrokerUnreachable it is, the loop closed;
    tests/unit/test_reset_listener.py checks that the installed pika still does this."""
    try:
        connection.ioloop.start()
    except ValueError as exc:
        if not (str(exc).startswith(_NOT_CONNECTED) and isinstance(exc.__context__, OSError)):
            raise
        connection.ioloop.close()
        raise BrokerUnreachable(f"cannot reach the broker at {describe(params)}: the connection was "
                                f"reset before the AMQP handshake") from None

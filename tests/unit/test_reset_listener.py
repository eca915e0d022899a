"""A peer that accepts a connection and resets it at once, as docker-proxy does while the broker
behind it is down (its connect to the broker fails, so it resets the client's).

pika 1.4 sometimes learns of that reset only at its check that the socket is still connected,
and then raises ValueError out of the connection's I/O loop instead of reporting a failed
connect: on 2026-12-07 CI's reference worker died of it in "A worker carries on through a
broker restart" on the 4.3.6 container. The first test pins that pika behaviour (when it fails,
pika has changed: workqueue._transport.start_loop's handling may go); the others are the
workqueue clients keeping on through it. No broker: the fault is the whole point."""

import logging
import multiprocessing
import socket
import struct
import threading
import time

import pika
import pytest

from workqueue.consumer import Worker
from workqueue.errors import BrokerUnreachable
from workqueue.producer import Producer

RESET_BEFORE_HANDSHAKE = "the connection was reset before the AMQP handshake"
DEADLINE = 30.0


def _accept_and_reset(listener, accepted):
    while True:
        connection, _ = listener.accept()
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()                       # linger 0: an RST, not a FIN
        with accepted.get_lock():
            accepted.value += 1


@pytest.fixture
def resetting_listener():
    """(port, accepted): a listener on 127.0.0.1 that resets every connection it accepts. Its
    own process, so it resets while pika is still between the connect and its check (in this
    process, under the GIL, it would rarely be fast enough)."""
    context = multiprocessing.get_context("fork")
    accepted = context.Value("i", 0)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        process = context.Process(target=_accept_and_reset, args=(listener, accepted), daemon=True)
        process.start()
        try:
            yield listener.getsockname()[1], accepted
        finally:
            process.kill()
            process.join(10)


def _params(port):
    return pika.ConnectionParameters("127.0.0.1", port, connection_attempts=1, socket_timeout=5)


def test_pika_raises_valueerror_out_of_its_loop_for_a_reset_it_meets_at_its_check(resetting_listener):
    """The assumption start_loop rests on (pika 1.4.x, io_services_utils._AsyncStreamConnector):
    among many connects to a resetting peer, some end with ValueError raised out of
    ioloop.start(), its __context__ the OSError of getpeername(), and not in the open-error
    callback the other resets reach (IncompatibleProtocolError, AMQPConnectionError)."""
    port, _ = resetting_listener
    escaped, reported = [], []
    deadline = time.monotonic() + DEADLINE
    while not escaped and time.monotonic() < deadline:
        connection = pika.SelectConnection(
            _params(port), on_open_callback=lambda c: c.ioloop.stop(),
            on_open_error_callback=lambda c, exc: (reported.append(type(exc).__name__), c.ioloop.stop()))
        try:
            connection.ioloop.start()
        except ValueError as exc:
            escaped.append(exc)
        finally:
            connection.ioloop.close()
    assert escaped, f"no ValueError escaped pika's I/O loop in {len(reported)} connects to a resetting peer"
    assert str(escaped[0]).startswith("Expected connected socket, but getpeername() failed")
    assert isinstance(escaped[0].__context__, OSError), repr(escaped[0].__context__)


def test_a_worker_takes_a_reset_before_the_handshake_as_a_failed_connect(resetting_listener, caplog):
    """The worker reconnects after it, as after any failed connect: once it has logged that very
    failure, it is still running and goes on connecting (three more connects)."""
    port, accepted = resetting_listener
    worker = Worker(_params(port), reconnect_delay=0.001, max_reconnect_delay=0.001)
    raised = []

    def run():
        try:
            worker.run()
        except BaseException as exc:  # noqa: BLE001 - the test reports whatever ended run()
            raised.append(exc)

    def seen():
        return any(RESET_BEFORE_HANDSHAKE in r.getMessage() for r in caplog.records)

    caplog.set_level(logging.WARNING, logger="workqueue.consumer")
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while thread.is_alive() and not seen() and time.monotonic() < deadline:
            thread.join(0.01)
        assert raised == [], f"run() ended with {raised[0]!r} after {accepted.value} connects"
        assert seen(), f"no reset before the handshake seen in {accepted.value} connects"
        after = accepted.value + 3
        while thread.is_alive() and accepted.value < after and time.monotonic() < deadline:
            thread.join(0.01)
        assert thread.is_alive() and raised == [], f"run() ended with {raised!r}"
        assert accepted.value >= after, f"the worker stopped connecting at {accepted.value} connects"
    finally:
        worker.stop()
        thread.join(DEADLINE)


def test_a_producer_raises_a_reset_before_the_handshake_as_broker_unreachable(resetting_listener):
    """Every connect fails with BrokerUnreachable (exit code 3 in the tools), never ValueError;
    the test connects until one of them is that very failure."""
    port, accepted = resetting_listener
    failures = []
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and not any(
            RESET_BEFORE_HANDSHAKE in str(f) or not isinstance(f, BrokerUnreachable) for f in failures):
        try:
            Producer(_params(port)).connect()
        except Exception as exc:  # noqa: BLE001 - the test checks what it was
            failures.append(exc)
    others = [f for f in failures if not isinstance(f, BrokerUnreachable)]
    assert others == [], f"a connect raised {others[0]!r}"
    assert any(RESET_BEFORE_HANDSHAKE in str(f) for f in failures), (
        f"no reset before the handshake seen in {accepted.value} connects")

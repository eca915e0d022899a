"""Producer: publish tasks with publisher confirms, pipelined, mandatory.

One asynchronous connection (pika's SelectConnection) carries every publish: a window of
unconfirmed tasks is kept in flight instead of one round trip per task, and the call returns
only when the broker has confirmed every task. A task the broker cannot route (no such queue)
comes back as basic.return and is reported, not silently dropped.

Given several brokers (the nodes of a cluster), the producer connects to the first that
answers; with ``reconnect_timeout`` it also rides out a lost connection in the middle of a
batch: it connects to the next node (or the same broker once it is back) and publishes again
every task not yet confirmed. A task can then reach the queue twice (its confirm was lost with
the connection), never zero times: at least once, as the workers are.

Who owns what, as in the consumer: the Producer owns its configuration, the failover state and
the batch loop; a _Session owns one connection (its channel in confirm mode, its delivery tags,
the returns not yet confirmed); a Batch (workqueue._batch) keeps the books of one call.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import pika
import pika.exceptions
import pika.spec

from workqueue._batch import Batch
from workqueue._transport import coalesce_writes, start_loop
from workqueue.broker_errors import open_error, queue_refused, unanswered_declaration
from workqueue.declare import declare_queue
from workqueue.errors import (
    BrokerUnreachable,
    ConnectionLost,
    ProducerBlocked,
    QueueFull,
    QueueRefused,
    TaskNotConfirmed,
    WorkqueueError,
)
from workqueue.failover import Backoff, Failover
from workqueue.spec import QueueSpec
from workqueue.urls import describe

log = logging.getLogger(__name__)


def preview(body, limit=40):
    """A short printable form of a task body, for error messages."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
    except UnicodeDecodeError:
        return repr(body[:limit]) + ("..." if len(body) > limit else "")
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


class Producer:
    """Publishes tasks to one queue and waits for the broker's confirms.

    >>> with Producer(params, QueueSpec("task_queue")) as producer:
    ...     producer.publish("First message.")
    ...     producer.publish_many(f"task {n}" for n in range(1000))

    ``window`` and ``window_bytes`` bound what publish_many keeps unconfirmed at a time: that
    many tasks, and that many bytes of their bodies (a larger task goes alone). Both only bound
    memory and the tasks published again after a lost connection: a confirm from a broker that
    persists its messages comes some tens of milliseconds after the publish, and a window smaller
    than the tasks that can be published meanwhile leaves the connection idle (bench/README.md).
    ``declare=False`` publishes without declaring the queue (a missing queue is then reported as
    unroutable). ``persistent=False`` sends transient messages (lost on a broker restart).
    ``params`` is one pika ConnectionParameters or several; ``reconnect_timeout`` (seconds, 0 =
    never) is how long publish_many keeps trying to reconnect after losing its connection, and
    to publish again tasks the broker nacks (as a quorum queue does while it elects a leader).
    ``confirm_timeout`` is how long a connection may go without any confirm: then publish_many
    raises TaskNotConfirmed, or, with ``reconnect_timeout``, gives that connection up as stalled
    and publishes the unconfirmed tasks again through a new one (the next node first).
    ``blocked_timeout`` is how long it waits while the broker blocks publishing (a resource
    alarm: connection.blocked, logged with its reason) before it raises ProducerBlocked; the
    confirm timeout does not run meanwhile.
    """

    def __init__(self, params, queue: QueueSpec | None = None, *, persistent: bool = True,
                 declare: bool = True, window: int = 10_000, window_bytes: int = 64 * 2**20,
                 confirm_timeout: float = 60.0,
                 reconnect_timeout: float = 0.0, declare_timeout: float = 30.0,
                 blocked_timeout: float = 60.0):
        self.failover = Failover(params)
        self.blocked_timeout = blocked_timeout
        self.declare_timeout = declare_timeout
        self.reconnect_timeout = reconnect_timeout
        self.reconnections = 0
        self.resent_after_nack = 0
        self.queue = queue or QueueSpec()
        self.persistent = persistent
        self.declare = declare
        self.window = window
        self.window_bytes = window_bytes
        self.confirm_timeout = confirm_timeout
        self._session: _Session | None = None
        # One properties object for every task: nothing in it varies from task to task.
        self._properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent if persistent else pika.DeliveryMode.Transient)

    # -- context manager ------------------------------------------------------------------
    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    # -- public API -----------------------------------------------------------------------
    def publish(self, body: str | bytes) -> None:
        """Publish one task and wait for its confirm; raise a WorkqueueError if it fails."""
        self.publish_many([body])

    def publish_many(self, bodies: Iterable[str | bytes], window: int | None = None,
                     on_confirm: Callable[[bytes], Any] | None = None) -> int:
        """Publish every task in ``bodies`` with up to ``window`` unconfirmed at a time (and at
        most ``window_bytes`` of their bodies: see the class).

        Returns the number of tasks confirmed; ``on_confirm(body)`` is called for each as its
        confirm arrives. Raises TaskNotConfirmed naming the first task that was returned,
        nacked, or left unconfirmed when the channel or connection closed (after
        ``reconnect_timeout`` seconds of trying to reconnect, when that is set).
        """
        batch = Batch(iter(bodies), window or self.window, on_confirm, window_bytes=self.window_bytes)
        if self.reconnect_timeout > 0 and self._session is not None and not self._session.usable:
            # Lost between two calls (a node crashed while this producer was idle): the same
            # reconnection as a loss in the middle of a batch. Seen on 4.0.5 in CI, 2026-12-02:
            # the next node's EOF while declaring, raised at once by a plain connect().
            self.failover.skip()
            self._reconnect(time.monotonic() + self.reconnect_timeout)
        else:
            self.connect()
        while True:
            assert self._session is not None
            self._session.send(batch)
            if not (batch.lost and self.reconnect_timeout > 0):
                break
            log.warning("%s; reconnecting and publishing the unconfirmed tasks again", batch.error)
            batch.requeue_unconfirmed()
            self.failover.skip()                                             # another node first
            self._reconnect(time.monotonic() + self.reconnect_timeout)
        if batch.error is not None:
            raise batch.error
        return batch.confirmed

    @property
    def params(self):
        """The ConnectionParameters of the broker connected to (or to be tried first)."""
        return self.failover.params

    def connect(self) -> None:
        """Open the connection, the confirm-mode channel, and declare the queue (idempotent).

        Tries each broker in turn from the current one; a refusal (credentials, queue) is
        raised at once, and when none answers the last one's error is raised."""
        if self._session is not None and self._session.usable:
            return
        self._session = self.failover.first_answering(self._open)

    def close(self) -> None:
        """Close the connection (pending confirms are not awaited)."""
        if self._session is not None:
            self._session.close()
        self._session = None

    # -- connections --------------------------------------------------------------------------
    def _open(self, params) -> _Session:
        session = _Session(self, params)
        session.open()
        return session

    def _reconnect(self, deadline):
        backoff = Backoff(0.1, 1.0)
        while True:
            try:
                self.connect()
                self.reconnections += 1
                return
            except BrokerUnreachable as exc:
                if isinstance(exc, ConnectionLost):
                    self.failover.skip()                                     # another node first
                delay = backoff.next()
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)          # back-off between attempts, not a synchronisation

    def _on_nack(self, batch: Batch, body: bytes) -> None:
        """A nacked task: an error, or (with reconnect_timeout) sent again while nacks have not
        gone on for longer than that. A queue that refuses tasks when full nacks for that reason:
        QueueFull at once (sending again would only be refused again)."""
        if self.queue.refuses_when_full:
            batch.fail(QueueFull(f"queue {self.queue.name!r} is full (x-max-length {self.queue.max_length}, "
                                 f"x-overflow {self.queue.overflow}): task {preview(body)} was refused; "
                                 f"the tasks it holds are kept"))
            return
        if self.reconnect_timeout > 0 and batch.nacked_for() < self.reconnect_timeout:
            batch.resend(body)
            self.resent_after_nack += 1
            return
        batch.fail(TaskNotConfirmed(f"task {preview(body)} was nacked by the broker"))


class _Session:
    """One connection of a Producer and its channel in confirm mode. Every method but open(),
    send() and close() is a SelectConnection callback, on the caller's thread while they run
    the connection's I/O loop."""

    def __init__(self, producer: Producer, params):
        self.producer = producer
        self.params = params
        self.ready = False                 # the channel is in confirm mode and the queue declared
        self.error: WorkqueueError | None = None
        self.connection: Any = None        # pika.SelectConnection
        self.channel: Any = None
        self.seq = 0                       # the last delivery tag used on this channel
        self.returned: dict[bytes, collections.deque[str]] = {}   # body -> why each return came back
        self.batch: Batch | None = None
        self.blocked: tuple[float, str] | None = None            # (since, the broker's reason)
        self.nacking_since: float | None = None    # the first nack on this channel since its last ack

    @property
    def usable(self) -> bool:
        return self.ready and self.connection is not None and self.connection.is_open

    def open(self) -> None:
        """Connect, open the channel, declare the queue; raise what went wrong."""
        self.connection = pika.SelectConnection(
            self.params, on_open_callback=self._on_open, on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed)
        start_loop(self.connection, self.params)
        if self.error is not None:
            error, self.error = self.error, None
            self.close()
            raise error

    def send(self, batch: Batch) -> None:
        """Publish ``batch`` on this connection until it is done, failed or lost."""
        batch.rebase(self.seq + 1)
        self.batch = batch
        self.connection.ioloop.add_callback_threadsafe(self._pump)
        self._watch(batch)
        self.connection.ioloop.start()
        self.batch = None

    def close(self) -> None:
        conn = self.connection
        self.ready = False
        if conn is not None and not conn.is_closed:
            try:
                conn.close()
                conn.ioloop.start()
            except Exception:  # pragma: no cover - best effort on a broken connection
                pass

    def _stop(self):
        self.connection.ioloop.stop()

    # -- opening ------------------------------------------------------------------------------
    def _on_open(self, connection):
        coalesce_writes(connection)
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        connection.channel(on_open_callback=self._on_channel_open)

    # -- blocked by a resource alarm ---------------------------------------------------------
    def _on_blocked(self, _connection, frame):
        reason = getattr(frame.method, "reason", "") or "no reason given"
        since = time.monotonic()
        self.blocked = (since, reason)
        log.warning("the broker blocked publishing on %s: %s (a resource alarm); waiting up to %g s "
                    "(--blocked-timeout)", describe(self.params), reason, self.producer.blocked_timeout)
        self.connection.ioloop.call_later(self.producer.blocked_timeout, lambda: self._blocked_too_long(since))

    def _on_unblocked(self, _connection, _frame):
        if self.blocked is not None:
            log.warning("the broker unblocked publishing after %.1f s; sending on",
                        time.monotonic() - self.blocked[0])
        self.blocked = None
        if self.batch is not None:
            self.batch.progress_at = time.monotonic()          # the confirm timeout starts again

    def _blocked_too_long(self, since):
        if self.blocked is None or self.blocked[0] != since:
            return                                              # unblocked meanwhile
        p = self.producer
        batch = self.batch
        first = f"; first unconfirmed task {preview(batch.first_unconfirmed())}" if batch and batch.unconfirmed else ""
        error = ProducerBlocked(f"the broker blocked publishing for {p.blocked_timeout:g} s "
                                f"(--blocked-timeout): {self.blocked[1]}{first}")
        if batch is not None and not batch.done:
            batch.fail(error)
            batch.finish()
        elif self.error is None:
            self.error = error
        self._abandon()

    def _on_open_error(self, _connection, exc):
        self.error = open_error(exc, self.params)
        self._stop()

    def _on_channel_open(self, channel):
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, _frame):
        p = self.producer
        if not p.declare:
            self._on_declared()
            return
        self.connection.ioloop.call_later(p.declare_timeout, self._declare_timed_out)
        declare_queue(self.channel, p.queue, self._on_declared)

    def _declare_timed_out(self):
        if self.ready or self.error is not None or not self.connection.is_open:
            return
        p = self.producer
        self.error = BrokerUnreachable(unanswered_declaration(p.queue.name, p.declare_timeout, self.params))
        self.connection.close()

    def _on_declared(self):
        self.ready = True
        self._stop()

    # -- closing ------------------------------------------------------------------------------
    def _on_closed(self, _connection, reason):
        was_ready, self.ready = self.ready, False
        batch = self.batch
        if batch is not None and not batch.done:
            batch.fail(TaskNotConfirmed(
                f"connection to {describe(self.params)} lost before {batch.unconfirmed} task(s) "
                f"were confirmed, first {preview(batch.first_unconfirmed())}: {reason}"), lost=True)
        elif not was_ready and self.error is None:
            # Lost while opening (seen on 4.0.5: a node's EOF during a cluster's failover, before
            # the channel opened): another node, or the same one later, may answer.
            self.error = ConnectionLost(f"connection to {describe(self.params)} lost while opening: {reason}")
        self._stop()

    def _on_channel_closed(self, _channel, reason):
        self.ready = False
        error: WorkqueueError
        if isinstance(reason, (pika.exceptions.ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker)):
            error = queue_refused(self.producer.queue.name, reason)
        else:
            error = WorkqueueError(f"channel closed: {reason}")
        batch = self.batch
        # Closed with its connection (broker gone, restarting, shutting down): worth a
        # reconnect. Closed alone by the broker (404, 406...): a refusal, final.
        lost = isinstance(reason, (pika.exceptions.ConnectionClosed, pika.exceptions.StreamLostError,
                                   pika.exceptions.AMQPConnectionError))
        if batch is not None and not batch.done:
            batch.fail(TaskNotConfirmed(
                f"task {preview(batch.first_unconfirmed())} not confirmed: channel closed: {reason}"),
                lost=lost)
        elif self.error is None:
            # Lost while declaring (seen on 4.0.5: EOF from a node during a cluster's failover):
            # another node, or the same one later, may answer; a refusal is final.
            self.error = (ConnectionLost(f"connection to {describe(self.params)} lost while declaring "
                                         f"queue {self.producer.queue.name!r}: {reason}")
                          if lost and not isinstance(error, QueueRefused) else error)
        if self.connection.is_open:
            self.connection.close()
        else:
            self._stop()

    def _abandon(self):
        """Give up a connection that answers nothing: ask the broker to close it, and stop
        waiting for that after a few seconds (a frozen broker never answers)."""
        self.ready = False
        self.connection.ioloop.call_later(2.0, self._stop)
        if self.connection.is_open:
            self.connection.close()          # its close callback stops the loop when the broker answers

    def _nacking_too_long(self, batch: Batch) -> bool:
        """A channel that has nacked every task for longer than the confirm timeout is given up
        like a silent one (with ``reconnect_timeout``): publish_many connects again, another node
        first, and sends them there. Seen once in five runs on a 3.10.8 cluster: the producer's
        channel, opened on a follower while the crashed leader's queue elected a new one, nacked
        every task for 60 s while the new leader took tasks from other channels."""
        p = self.producer
        now = time.monotonic()
        if self.nacking_since is None:
            self.nacking_since = now
        if p.reconnect_timeout <= 0 or now - self.nacking_since <= p.confirm_timeout:
            return False
        batch.fail(TaskNotConfirmed(f"every task on the channel to {describe(self.params)} nacked for "
                                    f"{now - self.nacking_since:.0f} s; first unconfirmed task "
                                    f"{preview(batch.first_unconfirmed())}"), lost=True)
        self._abandon()
        return True

    # -- publishing -----------------------------------------------------------------------------
    def _on_return(self, _channel, method, _properties, body):
        # The broker sends basic.return before the confirm of the same task: the confirm that
        # covers it finds the body, and why it came back, here.
        self.returned.setdefault(body, collections.deque()).append(f"{method.reply_code} {method.reply_text}")

    def _on_confirm(self, frame):
        batch = self.batch
        method = frame.method
        if batch is None:
            return
        bodies = batch.confirm(method.delivery_tag, method.multiple)
        if not isinstance(method, pika.spec.Basic.Ack):
            for body in bodies:
                self.producer._on_nack(batch, body)
            if batch.error is None:
                if not self._nacking_too_long(batch):
                    # The broker did not take these (e.g. a quorum queue electing a leader):
                    # try again shortly rather than at once.
                    self.connection.ioloop.call_later(0.1, self._pump)
                return
        else:
            self.nacking_since = None
            if not self.returned:
                batch.acked(bodies)
            else:
                for body in bodies:
                    reasons = self.returned.get(body)
                    if reasons:
                        why = reasons.popleft()
                        if not reasons:
                            del self.returned[body]
                        batch.fail(TaskNotConfirmed(
                            f"task {preview(body)} is unroutable: no queue {self.producer.queue.name!r} ({why})"))
                    else:
                        batch.acked([body])
        self._pump()

    def _pump(self):
        batch = self.batch
        if batch is None:
            return
        if batch.error is None and not self.channel.is_open:
            # Closing or closed under us (the node went away between a nack and the publish
            # again 0.1 s later; seen on 4.0.5): a lost connection, like the channel's own close
            # callback would report, so that publish_many connects again and sends the rest.
            batch.fail(TaskNotConfirmed(f"channel to {describe(self.params)} closed with "
                                        f"{batch.unconfirmed} task(s) unconfirmed"), lost=True)
            if self.connection.is_open:
                self.connection.close()            # its close callback stops the loop
            else:
                self._stop()
            return
        if batch.error is None:
            publish, name, properties = self.channel.basic_publish, self.producer.queue.name, self.producer._properties
            for body in batch.take(batch.window - batch.unconfirmed):
                publish("", name, body, properties, mandatory=True)
            self.seq = batch.last_tag
        # After a failure nothing more is published; outstanding confirms are still awaited.
        if batch.done or (batch.error is not None and batch.unconfirmed == 0):
            batch.finish()
            self._stop()

    def _watch(self, batch: Batch) -> None:
        """Fail the batch if no confirm arrives for ``confirm_timeout`` seconds.

        With ``reconnect_timeout`` set, a connection that stays silent that long is taken as
        stalled and given up like a lost one (publish_many connects again, to the next node
        first): a channel on a node of a cluster can wait on a queue leader that was cut off
        until the node is declared down, a minute later, while a new channel reaches the new
        leader at once (measured on 4.0.5 and 4.3.6, see docs/rabbitmq.md). It raises once no
        confirm at all has come for ``confirm_timeout + reconnect_timeout`` seconds."""
        p = self.producer

        def check():
            if batch.done or self.batch is not batch:
                return
            now = time.monotonic()
            if self.blocked is not None:
                batch.progress_at = now            # blocked: the blocked timeout runs instead
            elif now - batch.progress_at > p.confirm_timeout:
                stalled = (p.reconnect_timeout > 0
                           and now - batch.confirmed_at < p.confirm_timeout + p.reconnect_timeout)
                batch.fail(TaskNotConfirmed(
                    f"no confirm from the broker for {p.confirm_timeout:g} s; first unconfirmed "
                    f"task {preview(batch.first_unconfirmed())}"), lost=stalled)
                if stalled:
                    self._abandon()
                else:
                    batch.finish()
                    self._stop()
                return
            self.connection.ioloop.call_later(1.0, check)
        self.connection.ioloop.call_later(1.0, check)

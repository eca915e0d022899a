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
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import pika
import pika.exceptions
import pika.spec

from workqueue._transport import coalesce_writes
from workqueue.connection import (
    Backoff,
    ConnectionLost,
    Failover,
    describe,
    existing_queue,
    open_error,
    unanswered_declaration,
)
from workqueue.errors import BrokerUnreachable, QueueRefused, TaskNotConfirmed, WorkqueueError
from workqueue.spec import QueueSpec

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

    ``declare=False`` publishes without declaring the queue (a missing queue is then reported as
    unroutable). ``persistent=False`` sends transient messages (lost on a broker restart).
    ``params`` is one pika ConnectionParameters or several; ``reconnect_timeout`` (seconds, 0 =
    never) is how long publish_many keeps trying to reconnect after losing its connection, and
    to publish again tasks the broker nacks (as a quorum queue does while it elects a leader).
    ``confirm_timeout`` is how long a connection may go without any confirm: then publish_many
    raises TaskNotConfirmed, or, with ``reconnect_timeout``, gives that connection up as stalled
    and publishes the unconfirmed tasks again through a new one (the next node first).
    """

    def __init__(self, params, queue: QueueSpec | None = None, *, persistent: bool = True,
                 declare: bool = True, window: int = 1000, confirm_timeout: float = 60.0,
                 reconnect_timeout: float = 0.0, declare_timeout: float = 30.0):
        self.failover = Failover(params)
        self.declare_timeout = declare_timeout
        self.reconnect_timeout = reconnect_timeout
        self.reconnections = 0
        self.resent_after_nack = 0
        self.queue = queue or QueueSpec()
        self.persistent = persistent
        self.declare = declare
        self.window = window
        self.confirm_timeout = confirm_timeout
        self._connection: Any = None       # pika.SelectConnection
        self._channel: Any = None
        self._ready = False
        self._error: WorkqueueError | None = None
        self._seq = 0                      # last delivery tag used on the current channel
        self._returned: collections.Counter[bytes] = collections.Counter()   # body -> basic.returns not yet confirmed
        self._return_reason: str | None = None
        self._batch: _Batch | None = None
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
        """Publish every task in ``bodies`` with up to ``window`` unconfirmed at a time.

        Returns the number of tasks confirmed; ``on_confirm(body)`` is called for each as its
        confirm arrives. Raises TaskNotConfirmed naming the first task that was returned,
        nacked, or left unconfirmed when the channel or connection closed (after
        ``reconnect_timeout`` seconds of trying to reconnect, when that is set).
        """
        batch = _Batch(iter(bodies), window or self.window, on_confirm)
        self.connect()
        while True:
            batch.rebase(self._seq + 1)
            self._batch = batch
            self._connection.ioloop.add_callback_threadsafe(self._pump)
            self._watch(batch)
            self._run()
            self._batch = None
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

    def connect(self) -> None:
        """Open the connection, the confirm-mode channel, and declare the queue (idempotent).

        Tries each broker in turn from the current one; a refusal (credentials, queue) is
        raised at once, and when none answers the last one's error is raised."""
        if self._ready and self._connection is not None and self._connection.is_open:
            return
        self.failover.first_answering(self._connect_one)

    def _connect_one(self, params):
        self._reset()
        self._connection = pika.SelectConnection(
            params,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
        )
        self._run()
        if self._error is not None:
            error, self._error = self._error, None
            self._drop_connection()
            raise error

    def close(self) -> None:
        """Close the connection (pending confirms are not awaited)."""
        conn = self._connection
        if conn is not None and conn.is_open:
            conn.close()
            self._run()
        self._connection = None
        self._ready = False

    # -- ioloop plumbing ------------------------------------------------------------------
    def _run(self):
        self._connection.ioloop.start()

    def _stop(self):
        self._connection.ioloop.stop()

    def _reset(self):
        self._ready = False
        self._error = None
        self._seq = 0
        self._returned = collections.Counter()
        self._batch = None

    def _drop_connection(self):
        conn, self._connection = self._connection, None
        if conn is not None and not conn.is_closed:
            try:
                conn.close()
                conn.ioloop.start()
            except Exception:  # pragma: no cover - best effort on a broken connection
                pass

    def _on_connection_open(self, connection):
        coalesce_writes(connection)
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, _connection, exc):
        self._error = open_error(exc, self.params)
        self._stop()

    def _on_connection_closed(self, _connection, reason):
        self._ready = False
        batch = self._batch
        if batch is not None and not batch.done:
            batch.fail(TaskNotConfirmed(
                f"connection to {describe(self.params)} lost before {batch.unconfirmed} task(s) "
                f"were confirmed, first {preview(batch.first_unconfirmed())}: {reason}"), lost=True)
        self._stop()

    def _on_channel_open(self, channel):
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, _frame):
        if self.declare:
            self._connection.ioloop.call_later(self.declare_timeout, self._declare_timed_out)
        self._declare(list(self.queue.declarations()) if self.declare else [])

    def _declare_timed_out(self):
        if self._ready or self._error is not None or self._connection is None or not self._connection.is_open:
            return
        self._error = BrokerUnreachable(unanswered_declaration(self.queue.name, self.declare_timeout, self.params))
        self._connection.close()

    def _declare(self, pending):
        """Declare each (name, durable, arguments) in turn, then the producer is ready."""
        if not pending:
            self._on_declared(None)
            return
        name, durable, arguments = pending[0]
        self._channel.queue_declare(name, durable=durable, arguments=arguments,
                                    callback=lambda _frame: self._declare(pending[1:]))

    def _on_declared(self, _frame):
        self._ready = True
        self._stop()

    def _on_channel_closed(self, _channel, reason):
        self._ready = False
        error: WorkqueueError
        if isinstance(reason, (pika.exceptions.ChannelClosedByBroker,
                               pika.exceptions.ConnectionClosedByBroker)):
            error = QueueRefused(
                f"the broker refused queue {self.queue.name!r}: {reason.reply_code} {reason.reply_text}",
                reason.reply_code, existing_queue(reason.reply_text))
        else:
            error = WorkqueueError(f"channel closed: {reason}")
        batch = self._batch
        # Closed with its connection (broker gone, restarting, shutting down): worth a
        # reconnect. Closed alone by the broker (404, 406...): a refusal, final.
        lost = isinstance(reason, (pika.exceptions.ConnectionClosed, pika.exceptions.StreamLostError,
                                   pika.exceptions.AMQPConnectionError))
        if batch is not None and not batch.done:
            batch.fail(TaskNotConfirmed(
                f"task {preview(batch.first_unconfirmed())} not confirmed: channel closed: {reason}"),
                lost=lost)
        elif not self._ready and self._error is None:
            # Lost while declaring (seen on 4.0.5: EOF from a node during a cluster's failover):
            # another node, or the same one later, may answer; a refusal is final.
            self._error = (ConnectionLost(f"connection to {describe(self.params)} lost while declaring "
                                          f"queue {self.queue.name!r}: {reason}")
                           if lost and not isinstance(error, QueueRefused) else error)
        if self._connection.is_open:
            self._connection.close()
        else:
            self._stop()

    def _on_return(self, _channel, method, _properties, body):
        # The broker sends basic.return before the confirm of the same task: the confirm that
        # covers it finds the body here.
        self._returned[body] += 1
        self._return_reason = f"{method.reply_code} {method.reply_text}"

    def _on_confirm(self, frame):
        batch = self._batch
        method = frame.method
        if batch is None:
            return
        bodies = batch.confirm(method.delivery_tag, method.multiple)
        if not isinstance(method, pika.spec.Basic.Ack):
            for body in bodies:
                self._on_nack(batch, body)
            if batch.error is None:
                # The broker did not take these (e.g. a quorum queue electing a leader): try
                # again shortly rather than at once.
                self._connection.ioloop.call_later(0.1, self._pump)
                return
        elif not self._returned:
            batch.acked(bodies)
        else:
            for body in bodies:
                if self._returned[body] > 0:
                    self._returned[body] -= 1
                    if not self._returned[body]:
                        del self._returned[body]
                    batch.fail(TaskNotConfirmed(
                        f"task {preview(body)} is unroutable: no queue {self.queue.name!r} ({self._return_reason})"))
                else:
                    batch.acked([body])
        self._pump()

    def _on_nack(self, batch, body):
        """A nacked task: an error, or (with reconnect_timeout) sent again while nacks have not
        gone on for longer than that."""
        if self.reconnect_timeout > 0 and batch.nacked_for() < self.reconnect_timeout:
            batch.resend(body)
            self.resent_after_nack += 1
            return
        batch.fail(TaskNotConfirmed(f"task {preview(body)} was nacked by the broker"))

    def _pump(self):
        batch = self._batch
        if batch is None:
            return
        if batch.error is None and not self._channel.is_open:
            # Closing or closed under us (the node went away between a nack and the publish
            # again 0.1 s later; seen on 4.0.5): a lost connection, like the channel's own close
            # callback would report, so that publish_many connects again and sends the rest.
            batch.fail(TaskNotConfirmed(f"channel to {describe(self.params)} closed with "
                                        f"{batch.unconfirmed} task(s) unconfirmed"), lost=True)
            if self._connection.is_open:
                self._connection.close()            # its close callback stops the loop
            else:
                self._stop()
            return
        if batch.error is None:
            publish, name, properties = self._channel.basic_publish, self.queue.name, self._properties
            for body in batch.take(batch.window - batch.unconfirmed):
                publish("", name, body, properties, mandatory=True)
            self._seq = batch.last_tag
        # After a failure nothing more is published; outstanding confirms are still awaited.
        if batch.done or (batch.error is not None and batch.unconfirmed == 0):
            batch.finish()
            self._stop()

    def _watch(self, batch: _Batch) -> None:
        """Fail the batch if no confirm arrives for ``confirm_timeout`` seconds.

        With ``reconnect_timeout`` set, a connection that stays silent that long is taken as
        stalled and given up like a lost one (publish_many connects again, to the next node
        first): a channel on a node of a cluster can wait on a queue leader that was cut off
        until the node is declared down, a minute later, while a new channel reaches the new
        leader at once (measured on 4.0.5, see docs). It raises once no confirm at all has come
        for ``confirm_timeout + reconnect_timeout`` seconds."""
        connection = self._connection

        def check():
            if batch.done or self._batch is not batch:
                return
            now = time.monotonic()
            if now - batch.progress_at > self.confirm_timeout:
                stalled = (self.reconnect_timeout > 0
                           and now - batch.confirmed_at < self.confirm_timeout + self.reconnect_timeout)
                batch.fail(TaskNotConfirmed(
                    f"no confirm from the broker for {self.confirm_timeout:g} s; first unconfirmed "
                    f"task {preview(batch.first_unconfirmed())}"), lost=stalled)
                if stalled:
                    self._abandon(connection)
                else:
                    batch.finish()
                    self._stop()
                return
            connection.ioloop.call_later(1.0, check)
        connection.ioloop.call_later(1.0, check)

    def _abandon(self, connection):
        """Give up a connection that answers nothing: ask the broker to close it, and stop
        waiting for that after a few seconds (a frozen broker never answers)."""
        self._ready = False
        connection.ioloop.call_later(2.0, connection.ioloop.stop)
        if connection.is_open:
            connection.close()          # its close callback stops the loop when the broker answers


class _Batch:
    """Book-keeping for one publish_many call: what is sent, confirmed and failed.

    Delivery tags on a channel are consecutive, so the unconfirmed bodies are one deque in tag
    order, the first at ``first_tag``; a tag confirmed alone ahead of the first is kept aside.
    """

    def __init__(self, bodies, window, on_confirm=None):
        self._bodies = bodies
        self._resend: collections.deque[bytes] = collections.deque()   # unconfirmed when a connection was lost
        self.on_confirm = on_confirm
        self.lost = False                      # the error is a lost connection (worth a retry)
        self.nacked_since = None               # first nack since the last ack
        self.window = max(1, window)
        self._unconfirmed: collections.deque[bytes] = collections.deque()
        self.first_tag = 1
        self._early = set()                    # tags confirmed singly, out of order
        self.exhausted = False
        self.done = False
        self.error = None
        self.confirmed = 0
        self.progress_at = time.monotonic()    # the last confirm, or the last (re)start of sending
        self.confirmed_at = self.progress_at    # the last confirm (or nack): not reset by a reconnect

    @property
    def unconfirmed(self):
        return len(self._unconfirmed) - len(self._early)

    @property
    def last_tag(self):
        """The delivery tag of the last task published on the current channel."""
        return self.first_tag + len(self._unconfirmed) - 1

    def acked(self, bodies):
        """These tasks are confirmed: count them, report them, end any run of nacks."""
        self.nacked_since = None
        self.confirmed += len(bodies)
        if self.on_confirm is not None:
            for body in bodies:
                self.on_confirm(body)

    def nacked_for(self):
        """Seconds since the first nack of the current run of nacks (starting one now)."""
        now = time.monotonic()
        if self.nacked_since is None:
            self.nacked_since = now
        return now - self.nacked_since

    def finish(self):
        self.done = True

    def rebase(self, first_tag):
        """The channel's next delivery tag (nothing is unconfirmed at this point)."""
        self.first_tag = first_tag

    def take(self, count):
        """Up to ``count`` bodies to publish next (re-sends first), recorded as unconfirmed."""
        out: list[bytes] = []
        while self._resend and len(out) < count:
            out.append(self._resend.popleft())
        if not self.exhausted and len(out) < count:
            for body in itertools.islice(self._bodies, count - len(out)):
                out.append(body.encode("utf-8") if isinstance(body, str) else bytes(body))
            if len(out) < count:
                self.exhausted = True
        self._unconfirmed.extend(out)
        if self.exhausted and not self._unconfirmed and not self._resend:
            self.done = True
        return out

    def first_unconfirmed(self):
        for offset, body in enumerate(self._unconfirmed):
            if self.first_tag + offset not in self._early:
                return body
        return b""

    def confirm(self, tag, multiple):
        """Mark confirmed; return the bodies newly confirmed, in tag order."""
        self.progress_at = self.confirmed_at = time.monotonic()
        pending = self._unconfirmed
        done = []
        if multiple:
            count = min(tag - self.first_tag + 1, len(pending))
            if count > 0:
                if self._early:
                    for offset in range(count):
                        body = pending.popleft()
                        if self.first_tag + offset in self._early:
                            self._early.discard(self.first_tag + offset)
                        else:
                            done.append(body)
                else:
                    done = [pending.popleft() for _ in range(count)]
                self.first_tag += count
        elif tag == self.first_tag and pending:
            done.append(pending.popleft())
            self.first_tag += 1
        elif 0 < tag - self.first_tag < len(pending) and tag not in self._early:
            self._early.add(tag)
            done.append(pending[tag - self.first_tag])
        while pending and self.first_tag in self._early:
            self._early.discard(self.first_tag)
            pending.popleft()
            self.first_tag += 1
        if self.exhausted and not pending and not self._resend:
            self.done = True
        return done

    def resend(self, body):
        """Publish ``body`` again (after a nack), before any new task."""
        self._resend.append(body)
        self.done = False

    def fail(self, error, lost=False):
        if self.error is None:
            self.error = error
            self.lost = lost

    def requeue_unconfirmed(self):
        """After a lost connection: every task not yet confirmed is to be published again, first
        (delivery tags start again at 1 on the next channel)."""
        again = [body for offset, body in enumerate(self._unconfirmed)
                 if self.first_tag + offset not in self._early]
        self._resend.extendleft(reversed(again))
        self._unconfirmed.clear()
        self._early.clear()
        self.error = None
        self.lost = False
        self.done = False
        self.progress_at = time.monotonic()

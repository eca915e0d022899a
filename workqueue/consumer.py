"""Worker: consume tasks, run a handler off pika's I/O loop, ack after it returns.

The connection thread only moves frames (so heartbeats keep flowing through a long task); a
handler thread runs the tasks one at a time and hands each settlement (ack, retry, reject)
back to the connection thread. When the connection drops (broker restart or crash) the worker
reconnects with back-off, to another node first when it has several, and resumes; a task
whose ack could not be sent is redelivered by the broker (at least once).

Who owns what: the Worker owns its configuration, the failover state, the task queue between
the threads and the session in use; a _Session owns one connection (its channel, consumer and
the tasks it delivered and has not settled); the RetryPolicy decides what a failed task
becomes and how a retry is sent.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

import pika
import pika.exceptions
import pika.spec

from workqueue._transport import send_immediately, start_loop
from workqueue.broker_errors import open_error, queue_refused, translate, unanswered_declaration
from workqueue.declare import declare_queue
from workqueue.errors import AccessRefused, BadUrl, BrokerUnreachable, ConnectionLost, QueueRefused
from workqueue.failover import Backoff, Failover
from workqueue.spec import QueueSpec
from workqueue.urls import describe

log = logging.getLogger(__name__)

DEFAULT_DELIVERY_LIMIT = 5
ATTEMPTS_HEADER = "x-workqueue-attempts"
#: Most done tasks acknowledged together by one multiple ack. Acks are held back only while
#: further tasks are already delivered and waiting (prefetch > 1), so a worker that dies
#: leaves at most its prefetch of done-but-unacknowledged tasks to be redelivered.
ACK_BATCH = 100
#: Seconds to wait for the broker to answer the queue's declaration. RabbitMQ 4 gives no answer
#: at all when a classic queue's node is down; the worker then reconnects and tries again.
DECLARE_TIMEOUT = 30.0
_COUNT_HEADERS = ("x-delivery-count", "x-acquired-count", ATTEMPTS_HEADER)

#: Errors after which the worker reconnects; anything else ends run().
_RECONNECTABLE = (
    BrokerUnreachable,
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.ConnectionClosed,
    pika.exceptions.StreamLostError,
    pika.exceptions.ChannelWrongStateError,
    OSError,
)


def _reason(exc):
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


class Outcome(enum.Enum):
    """What becomes of a task once the handler is done with it."""

    ACK = "ack"              # done: acknowledged, gone from the queue
    RETRY = "retry"          # failed under the delivery limit: tried again
    REJECT = "reject"        # failed at the limit: to the dead-letter queue (or dropped)
    REQUEUE = "requeue"      # not started (the worker is stopping): given back as it was


@dataclasses.dataclass(slots=True)
class Delivery:
    """One task as the handler sees it."""

    body: bytes
    redelivered: bool = False
    delivery_count: int = 0          # earlier deliveries the broker (quorum) or worker counted
    message_id: str | None = None
    headers: dict = dataclasses.field(default_factory=dict)

    @property
    def text(self) -> str | None:
        """The body as text, or None when it is not UTF-8."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def display(self) -> str:
        """The body for printing: repr of the text, or repr of the bytes when undecodable."""
        text = self.text
        return repr(text) if text is not None else repr(self.body)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often a failing task is tried, where it goes then, and how a retry is sent.

    Earlier deliveries are counted by the broker on a quorum queue (x-delivery-count on 3.x,
    x-acquired-count on 4.x, after a nack with requeue); on a classic queue the worker
    republishes the task with its own attempts header and acks the delivery it had.
    """

    queue: QueueSpec
    limit: int

    @classmethod
    def for_queue(cls, spec: QueueSpec) -> RetryPolicy:
        limit = spec.delivery_limit or (1 if spec.dead_letter else DEFAULT_DELIVERY_LIMIT)
        return cls(spec, limit)

    @staticmethod
    def earlier_deliveries(headers: dict | None) -> int:
        return max((int(headers.get(h) or 0) for h in _COUNT_HEADERS), default=0) if headers else 0

    @property
    def destination(self) -> str:
        """Where a rejected task goes, for the log line that says so."""
        return f"dead-letter queue {self.queue.dead_letter!r}" if self.queue.dead_letter else "nowhere (dropped)"

    def after_failure(self, delivery: Delivery, exc: Exception) -> Outcome:
        failures = delivery.delivery_count + 1
        if failures < self.limit:
            log.warning("task %s failed (%s: %s), attempt %d of %d; retrying", delivery.display(),
                        type(exc).__name__, exc, failures, self.limit)
            return Outcome.RETRY
        where = self.destination
        log.error("task %s failed (%s: %s), attempt %d of %d; rejected to %s", delivery.display(),
                  type(exc).__name__, exc, failures, self.limit, where)
        return Outcome.REJECT

    def before_run(self, delivery: Delivery) -> Outcome | None:
        """A task that came back unsettled (the worker running it died, or lost its connection)
        counts as a try before it runs again, so that a task that kills its worker stops at the
        delivery limit instead of killing one worker after another. Only with a delivery limit
        set on the queue (``delivery_limit``). None: run it.

        A quorum queue counts the returns itself (the broker's own limit would allow one more
        run); a classic queue flags them redelivered only, so the worker sends the task round
        again with its attempts header counting that try, before running it."""
        if self.queue.delivery_limit is None:
            return None
        if self.queue.queue_type == "quorum":
            tries = delivery.delivery_count
            if tries < self.limit:
                return None
        else:
            if not delivery.redelivered:
                return None
            tries = delivery.delivery_count + 1
            if tries < self.limit:
                log.warning("task %s came back unsettled (its worker died or lost its connection): try %d "
                            "of %d; sent round again, counted", delivery.display(), tries, self.limit)
                return Outcome.RETRY
        where = self.destination
        log.error("task %s came back unsettled after %d tries of %d (it may kill its worker); "
                  "rejected to %s, not run", delivery.display(), tries, self.limit, where)
        return Outcome.REJECT

    def retry(self, channel, tag: int, properties, delivery: Delivery) -> None:
        """Send a failed task round again (on the connection thread)."""
        if self.queue.queue_type == "quorum":
            channel.basic_nack(tag, requeue=True)          # the broker counts the delivery
            return
        headers = dict(properties.headers or {})
        headers[ATTEMPTS_HEADER] = delivery.delivery_count + 1
        again = pika.BasicProperties(delivery_mode=properties.delivery_mode,
                                     message_id=properties.message_id, headers=headers)
        channel.basic_publish("", self.queue.name, delivery.body, again)
        channel.basic_ack(tag)


@dataclasses.dataclass(slots=True)
class _Task:
    """A delivered task on its way from the connection thread to the handler thread."""

    session: _Session
    tag: int
    properties: Any
    delivery: Delivery


@dataclasses.dataclass
class _Held:
    """Done tasks of one session whose (multiple) ack is not sent yet: the last tag, how many."""

    session: _Session
    tag: int
    count: int


class Worker:
    """Consumes ``queue`` and calls ``handler(delivery)`` for each task.

    prefetch: unacknowledged tasks the broker may push to this worker (1 = fair dispatch;
    0 = unlimited, the blind-dispatch contrast). auto_ack: the broker forgets a task as soon as
    it is sent (the contrast to manual acks; a killed worker loses its task). A handler that
    raises never stops the worker: the task is retried up to the queue's delivery limit, then
    rejected to the dead-letter queue (or dropped, logged, when there is none).
    consumer_timeout: seconds this worker asks the broker to let it hold a task (the consumer
    argument x-consumer-timeout; RabbitMQ 4.3 on quorum queues; None: the queue's or broker's).

    ``params`` is one pika ConnectionParameters or several (the nodes of a cluster): the
    worker connects to the first that answers and, when that connection is lost, tries the
    next one first, so workers of a node that died carry on through the others.

    ``on_consuming()`` is called each time the worker is consuming (after start and after each
    reconnect). ``stop()`` is graceful and may be called from any thread or a signal handler.
    """

    def __init__(self, params, queue: QueueSpec | None = None,
                 handler: Callable[[Delivery], Any] | None = None, *, prefetch: int = 1,
                 auto_ack: bool = False, reconnect: bool = True, reconnect_delay: float = 0.2,
                 max_reconnect_delay: float = 1.0, declare_timeout: float = DECLARE_TIMEOUT,
                 consumer_timeout: int | None = None, on_consuming: Callable[[], Any] | None = None):
        self.failover = Failover(params)
        self.queue = queue or QueueSpec()
        self.handler = handler or (lambda delivery: None)
        self.prefetch = prefetch
        self.auto_ack = auto_ack
        if consumer_timeout is not None and consumer_timeout < 0:
            raise ValueError(f"a consumer timeout cannot be negative ({consumer_timeout})")
        self.consumer_timeout = consumer_timeout
        self.reconnect = reconnect
        self.backoff = Backoff(reconnect_delay, max_reconnect_delay)
        self.declare_timeout = declare_timeout
        self.policy = RetryPolicy.for_queue(self.queue)
        self.on_consuming = on_consuming or (lambda: None)
        self._stopping = threading.Event()
        # Tasks go to the handler thread in batches, one per read of the socket: one hand-off
        # (a lock and a wake-up) per batch instead of one per task (bench/README.md).
        self._tasks: SimpleQueue[list[_Task] | None] = SimpleQueue()
        self._session: _Session | None = None
        self._in_hand: Delivery | None = None       # the task the handler is running

    # -- public API -----------------------------------------------------------------------
    def run(self) -> None:
        """Consume until stop(); reconnect on connection loss. Raises fatal WorkqueueErrors."""
        handler_thread = threading.Thread(target=self._handle_forever, name="workqueue-handler", daemon=True)
        handler_thread.start()
        try:
            while not self._stopping.is_set():
                try:
                    self.failover.first_answering(self._consume)
                except (AccessRefused, QueueRefused, BadUrl):
                    raise
                except _RECONNECTABLE as exc:
                    error = exc if isinstance(exc, BrokerUnreachable) else translate(exc, self.params)
                    if isinstance(exc, ConnectionLost):
                        self.failover.skip()                 # another node first
                    if not self.reconnect or self._stopping.is_set():
                        raise (error or exc) from None
                    delay = self.backoff.next()
                    log.warning("%s; reconnecting in %.1f s", error or exc, delay)
                    self._stopping.wait(delay)
        finally:
            self._tasks.put(None)

    def stop(self) -> None:
        """Stop taking tasks, finish and ack the current one, then return from run()."""
        self._stopping.set()
        session = self._session
        if session is not None:
            session.post(session.check_stop)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def params(self):
        """The ConnectionParameters of the broker connected to (or to be tried first)."""
        return self.failover.params

    # -- connection thread ----------------------------------------------------------------
    def _consume(self, params) -> None:
        """One connection's life on pika's SelectConnection I/O loop (this thread)."""
        session = _Session(self, params)
        self._session = session
        try:
            session.run()
        finally:
            self._session = None

    def _task(self, session: _Session, method, properties, body: bytes) -> _Task:
        """A task arrived (connection thread), as the handler thread will take it."""
        headers = dict(properties.headers) if properties.headers else {}
        delivery = Delivery(body, method.redelivered, RetryPolicy.earlier_deliveries(headers),
                            properties.message_id, headers)
        return _Task(session, method.delivery_tag, properties, delivery)

    def _deliver(self, batch: list[_Task]) -> None:
        """Hand the tasks of one read of the socket to the handler thread."""
        self._tasks.put(batch)

    # -- handler thread -------------------------------------------------------------------
    def _handle_forever(self) -> None:
        held: _Held | None = None

        def release():
            nonlocal held
            if held is not None:
                h, held = held, None
                h.session.post(lambda: h.session.ack_done(h.tag, h.count))

        batch: list[_Task] = []
        while True:
            if not batch:
                if held is not None and self._tasks.empty():
                    release()                           # nothing else delivered: ack now
                taken = self._tasks.get()
                if taken is None:
                    release()
                    return
                batch = taken
                batch.reverse()                         # taken from the end, in delivery order
            task = batch.pop()
            if held is not None and held.session is not task.session:
                held = None                             # that connection is gone: redelivered
            if task.session is not self._session and not self.auto_ack:
                continue                                # the broker redelivers it
            if self._stopping.is_set() and not self.auto_ack:
                outcome = Outcome.REQUEUE               # not started: give it back
            else:
                outcome = self._handle(task.delivery)
            if outcome is Outcome.ACK and not self.auto_ack:
                held = _Held(task.session, task.tag, held.count + 1 if held else 1)
                if held.count >= ACK_BATCH:
                    release()
                continue
            release()                                   # settles go out in delivery order
            task.session.post(lambda t=task, o=outcome: t.session.settle(t, o))

    def _handle(self, delivery: Delivery) -> Outcome:
        counted = None if self.auto_ack else self.policy.before_run(delivery)
        if counted is not None:
            return counted
        self._in_hand = delivery
        try:
            self.handler(delivery)
            return Outcome.ACK
        except Exception as exc:  # a failing handler never kills the worker
            return self.policy.after_failure(delivery, exc)
        finally:
            self._in_hand = None

    def in_hand(self) -> str:
        """' while task X was running' (for a message), or '' when the handler is idle."""
        delivery = self._in_hand
        return f" while task {delivery.display()} was running" if delivery is not None else ""


def consumer_timed_out(reason) -> bool:
    """The channel was closed by the broker's consumer timeout (RabbitMQ 3.8.15 to 4.2; 4.3 does so
    for a client without consumer_cancel_notify): 406 'delivery acknowledgement on channel N
    timed out'."""
    return reason.reply_code == 406 and "delivery acknowledgement" in str(reason.reply_text)


class _Session:
    """One connection of a Worker: SelectConnection callbacks, all on the connection thread
    (but post(), which any thread may call)."""

    def __init__(self, worker: Worker, params):
        self.worker = worker
        self.params = params
        self.opened = False
        self.error: Exception | None = None
        self.connection: Any = None     # pika.SelectConnection, once run() starts
        self.channel: Any = None
        self.consumer_tag: str | None = None
        self.consuming = False
        self.subscribing = False        # basic.consume sent, its answer not yet in
        self.cancel_sent = False
        self.outstanding = 0            # delivered to this session, not yet settled
        self.arrived: list[_Task] = []  # delivered in this read of the socket, not handed over yet

    def run(self) -> None:
        self.connection = pika.SelectConnection(
            self.params, on_open_callback=self._on_open, on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed)
        start_loop(self.connection, self.params)
        if self.error is not None:
            raise self.error

    def post(self, callback) -> None:
        """Run ``callback`` on this connection's thread (pika is not thread-safe)."""
        try:
            self.connection.ioloop.add_callback_threadsafe(callback)
        except Exception:
            log.info("connection closed before a settle could be sent; the broker redelivers")

    @property
    def live(self) -> bool:
        """Its channel is open: a settle sent now reaches the broker (after a reconnect, the
        tasks of an earlier session are redelivered instead)."""
        return self.channel is not None and self.channel.is_open

    # -- opening ----------------------------------------------------------------------------
    def _on_open_error(self, _connection, exc):
        self.error = open_error(exc, self.params)
        self.connection.ioloop.stop()

    def _on_open(self, connection):
        self.opened = True
        send_immediately(connection)
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel):
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_cancelled_by_broker)
        self.connection.ioloop.call_later(self.worker.declare_timeout, self._declare_timed_out)
        declare_queue(channel, self.worker.queue, self._on_declared)

    def _on_declared(self):
        self.channel.basic_qos(prefetch_count=self.worker.prefetch, callback=self._on_qos)

    def _declare_timed_out(self):
        if self.consuming or self.error is not None or not self.connection.is_open:
            return
        self.error = ConnectionLost(unanswered_declaration(self.worker.queue.name, self.worker.declare_timeout,
                                                           self.params))
        self.connection.close()

    def _on_qos(self, _frame):
        w = self.worker
        self.subscribing = True
        self.consumer_tag = self.channel.basic_consume(
            w.queue.name, lambda _ch, method, properties, body: self._on_message(method, properties, body),
            auto_ack=w.auto_ack, callback=self._on_consuming,
            arguments={"x-consumer-timeout": w.consumer_timeout * 1000} if w.consumer_timeout is not None else None)

    def _on_consuming(self, _frame):
        w = self.worker
        self.consuming = True
        w.backoff.reset()               # this connection works: the next loss starts the back-off again
        log.info("consuming %r on %s (prefetch %s%s)", w.queue.name, describe(self.params),
                 w.prefetch or "unlimited", ", auto-ack" if w.auto_ack else "")
        w.on_consuming()
        self.check_stop()

    def _on_message(self, method, properties, body):
        self.outstanding += 1
        if not self.arrived:            # the first of this read: hand them over once it is done
            self.connection.ioloop.call_later(0, self._hand_over)
        self.arrived.append(self.worker._task(self, method, properties, body))

    def _hand_over(self):
        if self.arrived:
            batch, self.arrived = self.arrived, []
            self.worker._deliver(batch)

    # -- settling (posted by the handler thread) ---------------------------------------------
    def settle(self, task: _Task, outcome: Outcome) -> None:
        """Retry, reject or give back one task (an ack of done tasks is ack_done)."""
        if not self.live:
            log.info("connection was lost before the settle of %s; the broker redelivers it",
                     task.delivery.display())
            return
        self.outstanding -= 1
        w = self.worker
        if not w.auto_ack:
            if outcome is Outcome.ACK:
                self.channel.basic_ack(task.tag)
            elif outcome is Outcome.REQUEUE:
                self.channel.basic_nack(task.tag, requeue=True)
            elif outcome is Outcome.RETRY:
                w.policy.retry(self.channel, task.tag, task.properties, task.delivery)
            elif outcome is Outcome.REJECT:
                self.channel.basic_reject(task.tag, requeue=False)
        self.check_stop()

    def ack_done(self, tag: int, count: int) -> None:
        """Ack ``count`` done tasks, the last one ``tag``."""
        if not self.live:
            log.info("connection was lost before the ack of %d task(s); the broker redelivers them", count)
            return
        self.outstanding -= count
        self.channel.basic_ack(tag, multiple=count > 1)
        self.check_stop()

    # -- stopping and closing -------------------------------------------------------------------
    def check_stop(self) -> None:
        """Stopping: cancel the consumer once, then close when no task is outstanding."""
        if not self.worker.stopping or self.connection is None or not self.connection.is_open:
            return
        if self.consumer_tag is not None and not self.cancel_sent and self.channel.is_open:
            self.cancel_sent = True
            self.channel.basic_cancel(self.consumer_tag)
        if self.outstanding == 0 or self.consumer_tag is None:
            self.connection.close()

    def _on_cancelled_by_broker(self, _frame):
        # The broker cancels a consumer whose queue went away (deleted, or its node lost):
        # reconnect and consume again rather than wait for deliveries that never come.
        # RabbitMQ 4.3 also cancels the consumer of a quorum queue whose task outlasted the
        # consumer timeout (measured 2026-12-02; 3.10 and 4.0 close the channel instead).
        if not self.worker.stopping:
            self.error = ConnectionLost(f"the broker cancelled the consumer of {self.worker.queue.name!r}"
                                        f"{self.worker.in_hand()} (a queue deleted or lost with its node, "
                                        f"or a task held past the consumer timeout); consuming again")
            self.connection.close()

    def _on_channel_closed(self, _channel, reason):
        if self.error is None and isinstance(reason, (pika.exceptions.ChannelClosedByBroker,
                                                      pika.exceptions.ConnectionClosedByBroker)):
            if not self.consuming and self.subscribing and reason.reply_code == pika.spec.INTERNAL_ERROR:
                # The queue was declared, but the broker could not start its consumer: a quorum
                # queue whose replica here is not running yet (workers declaring a new queue
                # together race its start: RabbitMQ 3.10-4.0 crash the channel on noproc, 4.1+
                # say "failed consuming from quorum queue"), or has no quorum. It passes.
                self.error = ConnectionLost(f"the broker could not start the consumer of "
                                            f"{self.worker.queue.name!r}: {reason.reply_code} "
                                            f"{reason.reply_text}; consuming again")
            elif not self.consuming:                    # refused while declaring or subscribing
                self.error = queue_refused(self.worker.queue.name, reason)
            elif consumer_timed_out(reason):
                # The broker took back the tasks of this channel, to give them to other workers:
                # the one running finishes (its ack is lost), and the worker consumes again.
                self.error = ConnectionLost(f"the broker's consumer timeout took back the tasks of this "
                                            f"worker{self.worker.in_hand()}: {reason.reply_code} "
                                            f"{reason.reply_text}; consuming again")
            else:
                self.error = ConnectionLost(f"channel closed by the broker: {reason.reply_code} "
                                            f"{reason.reply_text}")
        if self.connection.is_open:
            self.connection.close()

    def _on_closed(self, _connection, reason):
        if self.worker.auto_ack:
            self._hand_over()           # the broker has forgotten them: the worker does them
        graceful = self.worker.stopping and self.error is None
        if not graceful and self.error is None:
            self.error = ConnectionLost(f"connection to the broker at {describe(self.params)} lost: "
                                        f"{_reason(reason)}")
        self.connection.ioloop.stop()

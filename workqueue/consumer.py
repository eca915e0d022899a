"""Worker: consume tasks, run a handler off pika's I/O loop, ack after it returns.

The connection thread only moves frames (so heartbeats keep flowing through a long task); a
handler thread runs the tasks one at a time and hands the ack back to the connection thread.
When the connection drops (broker restart or crash) the worker reconnects with backoff and
resumes; a task whose ack could not be sent is redelivered by the broker (at least once).
"""

import dataclasses
import functools
import logging
import queue as queue_module
import threading

import pika
import pika.exceptions

from workqueue._transport import send_immediately
from workqueue.connection import candidates, describe, translate
from workqueue.errors import AccessRefused, BadUrl, BrokerUnreachable, QueueRefused
from workqueue.queue import QueueSpec

log = logging.getLogger(__name__)

DEFAULT_DELIVERY_LIMIT = 5
ATTEMPTS_HEADER = "x-workqueue-attempts"
#: Most done tasks acknowledged together by one multiple ack. Acks are held back only while
#: further tasks are already delivered and waiting (prefetch > 1), so a worker that dies
#: leaves at most its prefetch of done-but-unacknowledged tasks to be redelivered.
ACK_BATCH = 100
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


@dataclasses.dataclass
class Delivery:
    """One task as the handler sees it."""

    body: bytes
    redelivered: bool = False
    delivery_count: int = 0          # earlier deliveries the broker (quorum) or worker counted
    message_id: str | None = None
    headers: dict = dataclasses.field(default_factory=dict)

    @property
    def text(self):
        """The body as text, or None when it is not UTF-8."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def display(self):
        """The body for printing: repr of the text, or repr of the bytes when undecodable."""
        text = self.text
        return repr(text) if text is not None else repr(self.body)


class Worker:
    """Consumes ``queue`` and calls ``handler(delivery)`` for each task.

    prefetch: unacknowledged tasks the broker may push to this worker (1 = fair dispatch;
    0 = unlimited, the blind-dispatch contrast). auto_ack: the broker forgets a task as soon as
    it is sent (the contrast to manual acks; a killed worker loses its task). A handler that
    raises never stops the worker: the task is retried up to the queue's delivery limit, then
    rejected to the dead-letter queue (or dropped, logged, when there is none).

    ``params`` is one pika ConnectionParameters or several (the nodes of a cluster): the
    worker connects to the first that answers and, when that connection is lost, tries the
    next one first, so workers of a node that died carry on through the others.

    ``on_consuming()`` is called each time the worker is consuming (after start and after each
    reconnect). ``stop()`` is graceful and may be called from any thread or a signal handler.
    """

    def __init__(self, params, queue=None, handler=None, *, prefetch=1, auto_ack=False,
                 reconnect=True, reconnect_delay=0.2, max_reconnect_delay=1.0,
                 on_consuming=None):
        self.candidates = candidates(params)
        self._current = 0                # index of the broker connected to (or to try first)
        self.queue = queue or QueueSpec()
        self.handler = handler or (lambda delivery: None)
        self.prefetch = prefetch
        self.auto_ack = auto_ack
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.on_consuming = on_consuming or (lambda: None)
        self._stopping = threading.Event()
        self._outstanding = 0            # received, not yet settled (connection thread only)
        self._tasks = queue_module.Queue()
        self._connection = None
        self._session = None
        self._generation = 0
        self._thread = None

    # -- public API -----------------------------------------------------------------------
    def run(self):
        """Consume until stop(); reconnect on connection loss. Raises fatal WorkqueueErrors."""
        self._thread = threading.Thread(target=self._handle_forever, name="workqueue-handler",
                                        daemon=True)
        self._thread.start()
        delay = self.reconnect_delay
        try:
            while not self._stopping.is_set():
                generation = self._generation
                try:
                    self._consume()
                    delay = self.reconnect_delay
                except (AccessRefused, QueueRefused, BadUrl):
                    raise
                except _RECONNECTABLE as exc:
                    error = exc if isinstance(exc, BrokerUnreachable) else translate(exc, self.params)
                    if self._generation != generation:      # it was consuming: the connection dropped
                        error = BrokerUnreachable(f"connection to the broker at {describe(self.params)} "
                                                  f"lost: {_reason(exc)}")
                        self._current = (self._current + 1) % len(self.candidates)   # another node first
                    if not self.reconnect or self._stopping.is_set():
                        raise (error or exc) from None
                    log.warning("%s; reconnecting in %.1f s", error or exc, delay)
                    self._stopping.wait(delay)
                    delay = min(delay * 2, self.max_reconnect_delay)
        finally:
            self._tasks.put(None)

    def stop(self):
        """Stop taking tasks, finish and ack the current one, then return from run()."""
        self._stopping.set()
        self._post(self._wake)

    @property
    def stopping(self):
        return self._stopping.is_set()

    @property
    def params(self):
        """The ConnectionParameters of the broker connected to (or to be tried first)."""
        return self.candidates[self._current]

    # -- connection thread ----------------------------------------------------------------
    def _consume(self):
        """One connection's life on pika's SelectConnection I/O loop (this thread): connect to
        the first broker that answers, declare, consume until stop() or until the connection
        is lost. Returns after a graceful stop; raises a WorkqueueError otherwise."""
        error = None
        for offset in range(len(self.candidates)):
            index = (self._current + offset) % len(self.candidates)
            session = _Session(self, index)
            try:
                return session.run()
            except BrokerUnreachable as exc:
                if session.opened or offset == len(self.candidates) - 1:
                    raise
                log.info("%s; trying the next broker", exc)
                error = exc
        raise error                                       # pragma: no cover - loop always returns/raises

    def _wake(self):
        """On the connection thread (after stop(), a settle...): finish when stopping and idle."""
        session = self._session
        if session is not None:
            session.check_stop()

    def _on_message(self, generation, channel, method, properties, body):
        headers = properties.headers
        count = 0
        if headers:
            # Earlier deliveries: quorum queues count them (x-delivery-count on 3.x; on 4.x a
            # requeue by nack shows only in x-acquired-count); classic queues carry ours.
            count = max(int(headers.get(h) or 0) for h in _COUNT_HEADERS)
            headers = dict(headers)
        delivery = Delivery(body, method.redelivered, count, properties.message_id, headers or {})
        self._outstanding += 1
        self._tasks.put((generation, channel, method.delivery_tag, properties, delivery))

    def _settle(self, generation, channel, tag, properties, delivery, outcome):
        """Runs on the connection thread: ack, retry or reject one task."""
        if generation != self._generation or not channel.is_open:
            log.info("connection was lost before the ack of %s; the broker redelivers it",
                     delivery.display())
            return
        self._outstanding -= 1
        if self.auto_ack:
            self._wake()
            return
        if outcome == "ack":
            channel.basic_ack(tag)
        elif outcome == "requeue":
            channel.basic_nack(tag, requeue=True)
        elif outcome == "retry":
            if self.queue.queue_type == "quorum":
                channel.basic_nack(tag, requeue=True)      # the broker counts the delivery
            else:
                headers = dict(properties.headers or {})
                headers[ATTEMPTS_HEADER] = delivery.delivery_count + 1
                retry = pika.BasicProperties(delivery_mode=properties.delivery_mode,
                                             message_id=properties.message_id, headers=headers)
                channel.basic_publish("", self.queue.name, delivery.body, retry)
                channel.basic_ack(tag)
        elif outcome == "reject":
            channel.basic_reject(tag, requeue=False)
        self._wake()

    def _settle_done(self, generation, channel, tag, count):
        """Runs on the connection thread: ack ``count`` done tasks, the last one ``tag``."""
        if generation != self._generation or not channel.is_open:
            log.info("connection was lost before the ack of %d task(s); the broker redelivers them", count)
            return
        self._outstanding -= count
        channel.basic_ack(tag, multiple=count > 1)
        self._wake()

    # -- handler thread -------------------------------------------------------------------
    def _handle_forever(self):
        held = None         # [generation, channel, last tag, count]: done tasks, ack not yet sent

        def release():
            nonlocal held
            if held is not None:
                self._post(functools.partial(self._settle_done, *held))
                held = None

        while True:
            if held is not None and self._tasks.empty():
                release()                               # nothing else delivered: ack now
            item = self._tasks.get()
            if item is None:
                release()
                return
            generation, channel, tag, properties, delivery = item
            if held is not None and held[0] != generation:
                held = None                             # that connection is gone: redelivered
            if generation != self._generation and not self.auto_ack:
                continue                                # the broker redelivers it
            if self._stopping.is_set() and not self.auto_ack:
                outcome = "requeue"                     # not started: give it back
            else:
                outcome = self._handle(delivery)
            if outcome == "ack" and not self.auto_ack:
                held = [generation, channel, tag, (held[3] + 1) if held else 1]
                if held[3] >= ACK_BATCH:
                    release()
                continue
            release()                                   # settles go out in delivery order
            self._post(functools.partial(self._settle, generation, channel, tag, properties,
                                         delivery, outcome))

    def _handle(self, delivery):
        try:
            self.handler(delivery)
            return "ack"
        except Exception as exc:  # a failing handler never kills the worker
            failures = delivery.delivery_count + 1
            limit = self.queue.delivery_limit or (1 if self.queue.dead_letter else DEFAULT_DELIVERY_LIMIT)
            if failures < limit:
                log.warning("task %s failed (%s: %s), attempt %d of %d; retrying", delivery.display(),
                            type(exc).__name__, exc, failures, limit)
                return "retry"
            where = f"dead-letter queue {self.queue.dead_letter!r}" if self.queue.dead_letter else "nowhere (dropped)"
            log.error("task %s failed (%s: %s), attempt %d of %d; rejected to %s", delivery.display(),
                      type(exc).__name__, exc, failures, limit, where)
            return "reject"

    def _post(self, callback):
        """Run ``callback`` on the connection thread (pika is not thread-safe)."""
        conn = self._connection
        if conn is None:
            return
        try:
            conn.ioloop.add_callback_threadsafe(callback)
        except Exception:
            log.info("connection closed before a settle could be sent; the broker redelivers")


class _Session:
    """One connection of a Worker: SelectConnection callbacks, all on the connection thread."""

    def __init__(self, worker, index):
        self.worker = worker
        self.index = index
        self.params = worker.candidates[index]
        self.opened = False
        self.error = None
        self.channel = None
        self.consumer_tag = None
        self.consuming = False
        self.cancel_sent = False
        self.connection = None

    def run(self):
        w = self.worker
        self.connection = pika.SelectConnection(
            self.params, on_open_callback=self._on_open, on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed)
        w._connection = self.connection
        w._session = self
        try:
            self.connection.ioloop.start()
        finally:
            w._connection = None
            w._session = None
        if self.error is not None:
            raise self.error

    # -- opening ----------------------------------------------------------------------------
    def _on_open_error(self, _connection, exc):
        self.error = translate(exc, self.params) or BrokerUnreachable(
            f"cannot reach the broker at {describe(self.params)}: {exc}")
        self.connection.ioloop.stop()

    def _on_open(self, connection):
        w = self.worker
        self.opened = True
        w._current = self.index
        w._generation += 1
        w._outstanding = 0
        self.generation = w._generation
        send_immediately(connection)
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel):
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_cancelled_by_broker)
        self._declare(list(self.worker.queue.declarations()))

    def _declare(self, pending):
        if not pending:
            self.channel.basic_qos(prefetch_count=self.worker.prefetch, callback=self._on_qos)
            return
        name, durable, arguments = pending[0]
        self.channel.queue_declare(name, durable=durable, arguments=arguments,
                                   callback=lambda _frame: self._declare(pending[1:]))

    def _on_qos(self, _frame):
        w = self.worker
        on_message = functools.partial(w._on_message, self.generation)
        self.consumer_tag = self.channel.basic_consume(w.queue.name, on_message, auto_ack=w.auto_ack,
                                                       callback=self._on_consuming)

    def _on_consuming(self, _frame):
        w = self.worker
        self.consuming = True
        log.info("consuming %r on %s (prefetch %s%s)", w.queue.name, describe(self.params),
                 w.prefetch or "unlimited", ", auto-ack" if w.auto_ack else "")
        w.on_consuming()
        self.check_stop()

    # -- stopping and closing -------------------------------------------------------------------
    def check_stop(self):
        """Stopping: cancel the consumer once, then close when no task is outstanding."""
        w = self.worker
        if not w._stopping.is_set() or self.connection is None or not self.connection.is_open:
            return
        if self.consumer_tag is not None and not self.cancel_sent and self.channel.is_open:
            self.cancel_sent = True
            self.channel.basic_cancel(self.consumer_tag)
        if w._outstanding == 0 or self.consumer_tag is None:
            self.connection.close()

    def _on_cancelled_by_broker(self, _frame):
        # The broker cancels a consumer whose queue went away (deleted, or its node lost):
        # reconnect and consume again rather than wait for deliveries that never come.
        if not self.worker._stopping.is_set():
            self.error = BrokerUnreachable(f"the broker cancelled the consumer of {self.worker.queue.name!r}")
            self.connection.close()

    def _on_channel_closed(self, _channel, reason):
        if self.error is None and isinstance(reason, (pika.exceptions.ChannelClosedByBroker,
                                                      pika.exceptions.ConnectionClosedByBroker)):
            if not self.consuming:                      # refused while declaring or subscribing
                self.error = QueueRefused(
                    f"the broker refused queue {self.worker.queue.name!r}: {reason.reply_code} "
                    f"{reason.reply_text}", reason.reply_code)
            else:
                self.error = BrokerUnreachable(f"channel closed by the broker: {reason.reply_code} "
                                               f"{reason.reply_text}")
        if self.connection.is_open:
            self.connection.close()

    def _on_closed(self, _connection, reason):
        w = self.worker
        graceful = w._stopping.is_set() and self.error is None
        if not graceful and self.error is None:
            self.error = BrokerUnreachable(f"connection to the broker at {describe(self.params)} lost: "
                                           f"{_reason(reason)}")
        self.connection.ioloop.stop()

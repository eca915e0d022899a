"""How the broker hands tasks to a channel's consumers: the prefetch (basic.qos) seen by a
consumer of its own, written here in a few lines of pika, that relies on it."""

import threading
import time

import pika
import pytest
from pytest_bdd import given, parsers, then, when

from steps import DEADLINE, quoted
from steps.queues import HOLD_SECONDS, queue_counts
from workqueue import QueueSpec
from workqueue.testing import wait_until


class ThreadedConsumer:
    """One connection (pika's BlockingConnection), one channel, in a thread until closed; what
    it consumes and how it settles is ``subscribe(channel)``'s, in a subclass. An error is kept
    in ``error`` for the steps that wait on ``consuming``."""

    name = "consumer"

    def __init__(self, params):
        self.params = params
        self.error: BaseException | None = None
        self.consuming, self.stopping = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def subscribe(self, channel):
        raise NotImplementedError

    def _run(self):
        try:
            connection = pika.BlockingConnection(self.params)
            try:
                self.subscribe(connection.channel())
                self.consuming.set()
                while not self.stopping.is_set():
                    connection.process_data_events(time_limit=0.2)
            finally:
                connection.close()
        except BaseException as exc:            # said by the steps that wait on it
            self.error = exc
            self.consuming.set()

    def close(self):
        self.stopping.set()
        self.thread.join(DEADLINE)


class HoldingConsumer(ThreadedConsumer):
    """A consumer on each of ``queues`` with the given prefetch; it records what it is given and
    acknowledges nothing."""

    name = "holding-consumer"

    def __init__(self, params, queues, prefetch, global_qos):
        self.queues, self.prefetch, self.global_qos = queues, prefetch, global_qos
        self.received: list[str] = []
        super().__init__(params)

    def subscribe(self, channel):
        channel.basic_qos(prefetch_count=self.prefetch, global_qos=self.global_qos)
        for queue in self.queues:
            channel.basic_consume(queue, lambda _ch, _m, _p, body: self.received.append(body.decode()))


@pytest.fixture
def step_consumers():
    """The consumers a scenario's steps started (anything with close()); closed at its end."""
    made = []
    yield made
    for consumer in made:
        consumer.close()


@given(parsers.re(r'(?P<count>\d+) tasks are waiting in each of the queues (?P<names>".+")$'),
       target_fixture="waiting_queues")
def _(send, count, names):
    queues = quoted(names)
    for queue in queues:
        send([f"{queue} {n}" for n in range(1, int(count) + 1)], queue=QueueSpec(name=queue))
    return queues


@when(parsers.re(r'a worker consumes both on one channel, with (?:a (?P<scope>global) prefetch|a prefetch) of '
                 r'(?P<prefetch>\d+)(?: per consumer)?, acknowledging nothing$'), target_fixture="holding")
def _(broker, vhost, waiting_queues, step_consumers, scope, prefetch):
    consumer = HoldingConsumer(broker.params(vhost), waiting_queues, int(prefetch), global_qos=scope == "global")
    step_consumers.append(consumer)
    consumer.consuming.wait(DEADLINE)
    assert consumer.error is None, f"the consumer failed: {consumer.error!r}"
    return consumer


@then(parsers.re(r'it holds (?P<count>\d+) tasks?, and the broker shows (?P=count) unacknowledged in all$'))
def _(broker, vhost, waiting_queues, holding, count):
    """Given that many, and the broker's unacknowledged count over the queues that many, both
    holding still for HOLD_SECONDS. The worker is consuming both queues when this step begins,
    and a delivery beyond the prefetch comes within milliseconds: whatever the two numbers
    settle at (both known, holding still for HOLD_SECONDS) is the answer, the expected or not,
    so a worker given more than its prefetch fails here within seconds, not at DEADLINE."""
    def seen():
        rows = [queue_counts(broker, vhost, q) for q in waiting_queues]
        unacked = None if any(r is None or r[1] is None for r in rows) else sum(r[1] for r in rows)
        return len(holding.received), unacked

    expected = (int(count), int(count))

    def held_still():
        before = seen()
        if before[1] is None:
            return False                        # unknown is not an answer
        try:
            wait_until(lambda: seen() != before, HOLD_SECONDS, f"{count} task(s) held, changing")
        except TimeoutError:
            return True                         # held still
        return False
    try:
        wait_until(held_still, DEADLINE, f"{count} task(s) held")
    except TimeoutError:
        pass                                    # said below
    got, unacked = seen()
    assert (got, unacked) == expected and holding.error is None, (
        f"the worker holds {got} task(s) {sorted(holding.received)}, and the broker shows {unacked} "
        f"unacknowledged over {', '.join(waiting_queues)}; error {holding.error!r}")


class TimedOutConsumer:
    """One connection (pika's SelectConnection, as a worker runs), prefetch 1, in a thread. It
    takes one task and holds it until the broker takes it back for the consumer timeout
    (RabbitMQ 4.3 cancels the consumer of a quorum queue, basic.cancel; 3.10 and 4.0 close the
    channel), then does what a worker does: acknowledges the task it has finished late (on the
    channel it still has), consumes again on a new consumer and acknowledges each task it is
    given there at once. A task the broker gives to the consumer it dropped is not handed to it
    (pika logs "Unexpected delivery" and leaves it unacknowledged)."""

    def __init__(self, params, queue):
        self.params, self.queue = params, queue
        self.consuming_again = threading.Event()
        self.how = None                         # "basic.cancel" or "channel closed"
        self.taken_back_at = None               # time.monotonic() of that
        self.given_at: list[float] = []         # time.monotonic() of each task on the new consumer
        self.first_tag = self.new_tag = None
        self.given: list[tuple[str, bool]] = []  # (body, redelivered) on the new consumer
        self.error: BaseException | None = None
        self.stopping = False
        self.connection = None
        self.thread = threading.Thread(target=self._run, name="timed-out-consumer", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.connection = pika.SelectConnection(
                self.params, on_open_callback=lambda c: c.channel(on_open_callback=self._hold),
                on_open_error_callback=lambda _c, exc: self._fail(exc))
            self.connection.ioloop.start()
        except BaseException as exc:            # said by the steps that wait on it
            self._fail(exc)

    def _fail(self, exc):
        self.error = exc
        self.consuming_again.set()
        if self.connection is not None and not self.connection.is_closed:
            self.connection.ioloop.stop()

    def _hold(self, channel):
        held = []

        def on_cancel(_frame):
            if self.how is None:
                self.how, self.taken_back_at = "basic.cancel", time.monotonic()
                channel.basic_ack(held[0])      # the task, finished after its timeout
                self._consume_again(channel)

        def on_close(_channel, _reason):
            if self.how is None and not self.stopping:
                self.how, self.taken_back_at = "channel closed", time.monotonic()
                self.connection.channel(on_open_callback=self._consume_again)
        channel.add_on_cancel_callback(on_cancel)
        channel.add_on_close_callback(on_close)
        channel.basic_qos(prefetch_count=1)
        self.first_tag = channel.basic_consume(self.queue, lambda _ch, method, _p, _b: held.append(method.delivery_tag))

    def _consume_again(self, channel):
        channel.basic_qos(prefetch_count=1)

        def on_task(ch, method, _properties, body):
            self.given.append((body.decode(errors="replace"), method.redelivered))
            self.given_at.append(time.monotonic())
            ch.basic_ack(method.delivery_tag)
        self.new_tag = channel.basic_consume(self.queue, on_task, callback=lambda _f: self.consuming_again.set())

    def close(self):
        self.stopping = True
        connection = self.connection
        if connection is not None and not connection.is_closed:
            def shut():
                if connection.is_open:
                    connection.close()
                connection.ioloop.stop()
            connection.ioloop.add_callback_threadsafe(shut)
        self.thread.join(DEADLINE)


@given("a worker that held a task past the consumer timeout, finished it once the broker took it back, "
       "and consumes again", target_fixture="timed_out")
def _(broker, vhost, queue_spec, send, step_consumers):
    """The held task is taken back to the queue at the timeout, and given again to the new
    consumer, which acknowledges it: the queue is empty again before the scenario goes on."""
    send(["held task"])
    consumer = TimedOutConsumer(broker.params(vhost), queue_spec.name)
    step_consumers.append(consumer)
    assert consumer.consuming_again.wait(3 * DEADLINE) and consumer.error is None, (
        f"the worker did not get as far as consuming again: {consumer.error!r}")
    wait_until(lambda: ("held task", True) in consumer.given, DEADLINE, "the held task given again")
    return consumer


@then(parsers.re(r"the worker is given the (?P<count>\d+) tasks on its new consumer, none on the consumer the "
                 r"broker took the task from, and the task queue has that one consumer$"))
def _(broker, vhost, queue_spec, timed_out, sent_tasks, count):
    """Each task once, not redelivered (a task given to the old consumer, which the worker no
    longer has, comes back redelivered when the broker times that consumer out too, a consumer
    timeout later); the consumer count is the broker's own (AMQP passive declare)."""
    def done():
        return {body for body, _ in timed_out.given} >= set(sent_tasks)
    try:
        wait_until(done, DEADLINE, f"the {count} tasks given")
    except TimeoutError:
        pass                                    # said below
    got = [(body, again) for body, again in timed_out.given if body in sent_tasks]
    back = next((round(at - timed_out.taken_back_at, 1) for (body, _), at in zip(timed_out.given, timed_out.given_at)
                 if body == "held task"), None)
    depth = broker.depth(queue_spec.name, vhost)
    consumers = depth[1] if depth else None
    assert (sorted(got), consumers) == (sorted((t, False) for t in sent_tasks), 1) and timed_out.error is None, (
        f"after the broker took the held task back ({timed_out.how}), the new consumer was given "
        f"{sorted(got)} (body, redelivered); the task queue has {consumers} consumer(s); the held task "
        f"came back to the new consumer {back} s after it was taken back; "
        f"error {timed_out.error!r}")

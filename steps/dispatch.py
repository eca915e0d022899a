"""How the broker hands tasks to a channel's consumers: the prefetch (basic.qos) seen by a
consumer of its own, written here in a few lines of pika, that relies on it."""

import threading

import pika
import pytest
from pytest_bdd import given, parsers, then, when

from steps import DEADLINE, quoted
from steps.queues import HOLD_SECONDS, queue_counts
from workqueue import QueueSpec
from workqueue.testing import wait_until


class HoldingConsumer:
    """One connection, one channel, a consumer on each of ``queues`` with the given prefetch;
    it records what it is given and acknowledges nothing. Runs in a thread until closed."""

    def __init__(self, params, queues, prefetch, global_qos):
        self.params, self.queues, self.prefetch, self.global_qos = params, queues, prefetch, global_qos
        self.received: list[str] = []
        self.error: BaseException | None = None
        self.consuming, self.stopping = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="holding-consumer", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            connection = pika.BlockingConnection(self.params)
            try:
                channel = connection.channel()
                channel.basic_qos(prefetch_count=self.prefetch, global_qos=self.global_qos)
                for queue in self.queues:
                    channel.basic_consume(queue, lambda _ch, _m, _p, body: self.received.append(body.decode()))
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


@pytest.fixture
def holding_consumers():
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
def _(broker, vhost, waiting_queues, holding_consumers, scope, prefetch):
    consumer = HoldingConsumer(broker.params(vhost), waiting_queues, int(prefetch), global_qos=scope == "global")
    holding_consumers.append(consumer)
    consumer.consuming.wait(DEADLINE)
    assert consumer.error is None, f"the consumer failed: {consumer.error!r}"
    return consumer


@then(parsers.re(r'it holds (?P<count>\d+) tasks?, and the broker shows (?P=count) unacknowledged in all$'))
def _(broker, vhost, waiting_queues, holding, count):
    """Given that many, and the broker's unacknowledged count over the queues that many, both
    holding still for HOLD_SECONDS (a delivery beyond the prefetch comes within milliseconds)."""
    def seen():
        rows = [queue_counts(broker, vhost, q) for q in waiting_queues]
        unacked = None if any(r is None or r[1] is None for r in rows) else sum(r[1] for r in rows)
        return len(holding.received), unacked

    expected = (int(count), int(count))
    try:
        wait_until(lambda: seen() == expected, DEADLINE, f"{count} task(s) held")
    except TimeoutError:
        pass                                    # said below
    if seen() == expected:
        try:                                    # a change within the hold is what fails below
            wait_until(lambda: seen() != expected, HOLD_SECONDS, f"{count} task(s) held, changing")
        except TimeoutError:
            pass                                # held still
    got, unacked = seen()
    assert (got, unacked) == expected and holding.error is None, (
        f"the worker holds {got} task(s) {sorted(holding.received)}, and the broker shows {unacked} "
        f"unacknowledged over {', '.join(waiting_queues)}; error {holding.error!r}")

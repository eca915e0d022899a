"""Tasks handed back to their queue (basic.reject or basic.nack with requeue) and what a
quorum queue does with them: its delivery limit, and RabbitMQ 4.3's delayed retry. The worker
that hands them back is written here in a few lines of pika: what is measured is the broker."""

import re
import time

from pytest_bdd import given, parsers, then

from steps import DEADLINE
from steps.dispatch import ThreadedConsumer
from steps.queues import HOLD_SECONDS, exact_counts
from workqueue import Producer, QueueSpec
from workqueue.testing import wait_until

#: The resolution of the clock a quorum queue counts a delayed retry by (Ra's system time, ms).
RA_CLOCK = 0.001


class HandingBack(ThreadedConsumer):
    """Prefetch 1, a consumer on ``queue`` that hands back each task it is given with ``method``
    ("basic.reject" or "basic.nack", requeue set) up to ``times`` times, then acknowledges it: a
    loop the broker would not stop stops there. It records the moment of each delivery
    (time.monotonic)."""

    name = "handing-back"

    def __init__(self, params, queue, method, times):
        self.queue, self.method, self.times = queue, method, times
        self.given: dict[str, list[float]] = {}
        super().__init__(params)

    def subscribe(self, channel):
        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(self.queue, self._on_task)

    def _on_task(self, channel, method, _properties, body):
        moments = self.given.setdefault(body.decode(errors="replace"), [])
        moments.append(time.monotonic())
        if len(moments) > self.times:
            channel.basic_ack(method.delivery_tag)
        elif self.method == "basic.reject":
            channel.basic_reject(method.delivery_tag, requeue=True)
        else:
            channel.basic_nack(method.delivery_tag, requeue=True)


def _policy_on_declared_queue(broker, vhost, kind, definition):
    """The task queue declared first (as its workers declare it), then the policy set on it
    alone, as an operator changes a queue in use without declaring it again; returns once the
    broker lists the policy as the queue's own."""
    spec = QueueSpec(queue_type=kind)
    with Producer(broker.params(vhost), spec):
        pass                                    # connecting declares the queue
    name = "task-queue-" + "-".join(definition)
    broker.management.set_policy(vhost, name, f"^{re.escape(spec.name)}$", definition)
    wait_until(lambda: broker.management.queue(vhost, spec.name).get("policy") == name, DEADLINE,
               f"the policy {name} to apply to {spec.name}")
    return spec


@given(parsers.re(r"a quorum task queue whose policy sets a delivery limit of (?P<limit>\d+)$"),
       target_fixture="queue_spec")
def _(broker, vhost, limit):
    return _policy_on_declared_queue(broker, vhost, "quorum", {"delivery-limit": int(limit)})


@given(parsers.re(r"a quorum task queue whose policy holds a task handed back for (?P<seconds>\d+) seconds?"
                  r" before it is given out again$"), target_fixture="queue_spec")
def _(broker, vhost, seconds):
    """Delayed retry (RabbitMQ 4.3): a returned task waits min(min * its delivery count, max)
    milliseconds, a delivery count of 0 counting as 1; min = max here: the same wait each time."""
    ms = int(seconds) * 1000
    return _policy_on_declared_queue(broker, vhost, "quorum", {
        "delayed-retry-type": "all", "delayed-retry-min": ms, "delayed-retry-max": ms})


@given(parsers.re(r"a worker that hands back every task with (?P<method>basic\.reject|basic\.nack), "
                  r"(?P<times>\d+) times at most$"), target_fixture="hander")
def _(broker, vhost, queue_spec, step_consumers, method, times):
    with Producer(broker.params(vhost), queue_spec):
        pass                                    # the queue as the scenario declared it
    consumer = HandingBack(broker.params(vhost), queue_spec.name, method, int(times))
    step_consumers.append(consumer)
    consumer.consuming.wait(DEADLINE)
    assert consumer.error is None, f"the worker failed: {consumer.error!r}"
    return consumer


def _given_count(hander, task):
    return len(hander.given.get(task, []))


def _settled(broker, vhost, queue_spec, hander, task):
    """Once the task queue is empty (nothing ready, nothing unacknowledged) with the count of
    deliveries holding still for HOLD_SECONDS: (deliveries, counts); else what was seen last.
    A task held back for a delayed retry is neither ready nor unacknowledged while it waits,
    so the queue looks empty between deliveries: a delivery or a count seen during the hold
    starts the wait again (the management API's counts trail by about a second, so this shows
    from RabbitMQ 4.3 on, the only version with delayed retries)."""
    def quiet():
        return exact_counts(broker, vhost, queue_spec.name) == (0, 0, 1)

    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            wait_until(quiet, deadline - time.monotonic(), f"{queue_spec.name} to be empty")
        except TimeoutError:
            break                               # said by the caller
        given = _given_count(hander, task)
        try:
            wait_until(lambda: _given_count(hander, task) != given or not quiet(), HOLD_SECONDS,
                       f"{task} given again")
        except TimeoutError:
            break                               # held still: read below
    return _given_count(hander, task), exact_counts(broker, vhost, queue_spec.name)


@then(parsers.re(r'the worker is given "(?P<task>[^"]+)" (?P<count>\d+) times, and then the task queue is empty$'))
def _(broker, vhost, queue_spec, hander, task, count):
    """Exactly that many deliveries, the queue then empty (0 ready, 0 unacknowledged, the one
    consumer), nothing more given within HOLD_SECONDS."""
    given, counts = _settled(broker, vhost, queue_spec, hander, task)
    assert (given, counts) == (int(count), (0, 0, 1)) and hander.error is None, (
        f"the worker was given {task!r} {given} time(s) (it hands a task back {hander.times} times at most, "
        f"then keeps it); {queue_spec.name} holds ready, unacked, consumers {counts}; error {hander.error!r}")


@then(parsers.re(r'the worker is given "(?P<task>[^"]+)" (?P<count>\d+) times, each (?P<how>at least|less than) '
                 r'(?P<seconds>\d+) seconds? after the last$'))
def _(broker, vhost, queue_spec, hander, task, count, how, seconds):
    """The gaps between the deliveries as this process saw them: a task held back is given out
    only after its wait, counted from the broker's receipt of the return, which comes after the
    delivery before it here (at least: to the millisecond, the resolution of Ra's clock, which
    the broker counts the wait by); given out at once, within milliseconds (less than)."""
    given, counts = _settled(broker, vhost, queue_spec, hander, task)
    moments = hander.given.get(task, [])
    gaps = [round(b - a, 3) for a, b in zip(moments, moments[1:])]
    limit = int(seconds)
    fits = all(g >= limit - RA_CLOCK for g in gaps) if how == "at least" else all(g < limit for g in gaps)
    assert given == int(count) and counts == (0, 0, 1) and fits and hander.error is None, (
        f"the worker was given {task!r} {given} time(s), {gaps} s apart; {queue_spec.name} holds "
        f"ready, unacked, consumers {counts}; error {hander.error!r}")

"""The tutorial's own scripts, as they are today: what rabbitmq-tutorials' python/new_task.py
and worker.py do to the broker since commit 0b32ef6 (2026-03-16), in this project's words.

They declare ``task_queue`` durable with ``x-queue-type: quorum`` (and ``hello`` likewise);
until then they declared it as a classic durable queue, which the other steps make with
QueueSpec() (the library's default is still that classic queue).
"""

import pika
import pika.exceptions
from pytest_bdd import given, parsers, then, when

from steps import DEADLINE
from steps.queues import wait_counts

#: How today's tutorial declares its queues (durable, and this argument).
TODAYS_ARGUMENTS = {"x-queue-type": "quorum"}


def declare_as_today(broker, vhost, name):
    """Declare ``name`` as today's tutorial does, on a connection of its own; None when the
    broker accepts it, else the broker's refusal (ChannelClosedByBroker: code and text)."""
    connection = pika.BlockingConnection(broker.params(vhost))
    try:
        connection.channel().queue_declare(name, durable=True, arguments=TODAYS_ARGUMENTS)
        return None
    except pika.exceptions.ChannelClosedByBroker as refusal:
        return refusal
    finally:
        if connection.is_open:
            connection.close()


@given(parsers.parse('today\'s tutorial has declared "{name}"'))
def _(broker, vhost, name):
    refusal = declare_as_today(broker, vhost, name)
    assert refusal is None, f"the broker refused today's tutorial's declaration: {refusal}"


@given(parsers.parse('today\'s tutorial\'s new_task sent "{task}"'))
def _(broker, vhost, task):
    """Its declaration, then a persistent message to task_queue (confirmed here, so the Given
    holds before the When: the tutorial itself does not wait for a confirm)."""
    connection = pika.BlockingConnection(broker.params(vhost))
    try:
        channel = connection.channel()
        channel.queue_declare("task_queue", durable=True, arguments=TODAYS_ARGUMENTS)
        channel.confirm_delivery()
        channel.basic_publish("", "task_queue", task.encode(),
                              pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent), mandatory=True)
    finally:
        connection.close()


@when(parsers.parse('today\'s tutorial\'s worker declares "{name}"'), target_fixture="tutorial_refusal")
def _(broker, vhost, name):
    return declare_as_today(broker, vhost, name)


@then("the broker accepts the tutorial's declaration")
def _(tutorial_refusal):
    assert tutorial_refusal is None, f"the broker refused it: {tutorial_refusal}"


@when("a worker starts with its defaults", target_fixture="default_worker")
def _(worker_pool):
    """``worker`` with no queue option at all (its work made instant)."""
    worker = worker_pool.start("today", "--seconds-per-dot", "0")
    worker.wait_consuming(DEADLINE)
    return worker


@then(parsers.parse('the worker does "{task}" and nothing else'))
def _(broker, vhost, default_worker, task):
    default_worker.wait_for(lambda _l: task in default_worker.finished(), DEADLINE, f"{task!r} done")
    wait_counts(broker, vhost, "task_queue", (0, 0, 1))
    assert default_worker.finished() == [task], default_worker.finished()
    assert default_worker.process.poll() is None, default_worker.errors

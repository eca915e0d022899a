"""What a failed task becomes (workqueue.consumer.RetryPolicy), and how a retry is sent."""

import pika
import pytest

from workqueue.consumer import ATTEMPTS_HEADER, Delivery, Outcome, RetryPolicy
from workqueue.spec import QueueSpec


class RecordingChannel:
    """Records what the policy asks of a channel (the broker is not the subject here)."""

    def __init__(self):
        self.calls = []

    def basic_publish(self, exchange, routing_key, body, properties):
        self.calls.append(("publish", routing_key, body, properties))

    def basic_ack(self, tag):
        self.calls.append(("ack", tag))

    def basic_nack(self, tag, requeue):
        self.calls.append(("nack", tag, requeue))


@pytest.mark.parametrize("earlier, outcome", [(0, Outcome.RETRY), (3, Outcome.RETRY), (4, Outcome.REJECT)])
def test_a_task_is_tried_up_to_the_delivery_limit_then_rejected(earlier, outcome):
    policy = RetryPolicy.for_queue(QueueSpec(delivery_limit=5))
    assert policy.after_failure(Delivery(b"t", delivery_count=earlier), ValueError("boom")) is outcome


def test_with_a_dead_letter_queue_and_no_limit_the_first_failure_is_rejected():
    policy = RetryPolicy.for_queue(QueueSpec(dead_letter="task_queue.dead"))
    assert policy.after_failure(Delivery(b"t"), ValueError("boom")) is Outcome.REJECT


@pytest.mark.parametrize("headers, count", [
    (None, 0), ({}, 0), ({"x-delivery-count": 2}, 2), ({"x-acquired-count": 3}, 3),
    ({ATTEMPTS_HEADER: 4, "x-delivery-count": 1}, 4)])
def test_earlier_deliveries_are_read_from_whichever_header_counts_them(headers, count):
    assert RetryPolicy.earlier_deliveries(headers) == count


def test_a_quorum_queue_retry_is_a_requeue_that_the_broker_counts():
    channel = RecordingChannel()
    RetryPolicy.for_queue(QueueSpec(queue_type="quorum")).retry(channel, 7, pika.BasicProperties(), Delivery(b"t"))
    assert channel.calls == [("nack", 7, True)]


def test_a_classic_queue_retry_republishes_with_its_count_and_delivery_mode_then_acks():
    channel = RecordingChannel()
    properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, message_id="m1",
                                      headers={"keep": "me"})
    RetryPolicy.for_queue(QueueSpec()).retry(channel, 9, properties, Delivery(b"t", delivery_count=1))
    (kind, queue, body, again), ack = channel.calls
    assert (kind, queue, body, ack) == ("publish", "task_queue", b"t", ("ack", 9))
    assert again.delivery_mode == pika.DeliveryMode.Persistent.value and again.message_id == "m1"
    assert again.headers == {"keep": "me", ATTEMPTS_HEADER: 2}

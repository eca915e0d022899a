"""The AMQP 1.0 work-queue worker in Python, in the design of rabbitmq-tutorials' Java AMQP 1.0
Worker (java-amqp/Worker.java), on RabbitMQ's AMQP 1.0 Python client (rabbitmq-amqp-python-client,
which runs on Qpid Proton): the queue declared through the client's management API, a consumer
with a link credit of 1, the work in the client's message handler, and the task accepted in a
``finally`` once the work is over, whether it succeeded or raised; the client's own connection
recovery (on by default). CTRL+C ends the consumer's loop, then the consumer, the connection and
the environment are closed, as the client's own examples do. Written here, not copied (there is no
Python port of that tutorial upstream).

The contract's knobs (docs/conformance.md): WORKER_PREFETCH is the consumer's credit (AMQP 1.0 has
no "no limit"); WORKER_AUTO_ACK=1 a pre-settled link (the broker settles each task as it sends it:
the auto-ack contrast), with no accept; WORKER_SETTLE_FAILED how a task that failed is settled
instead of the accept: released (the client's requeue), modified with delivery-failed (Proton's
own disposition: the client's requeue_with_annotations sends delivery-failed false) or rejected
(the client's discard); WORKER_CLIENT_PREFETCH=1 no credit given: the client's default (10 in
1.0.1). The client has no idle-timeout setting, so no heartbeat knob. RabbitMQ 4 only.
"""

import json
import os
import signal
import sys
import time

import rabbitmq_amqp_python_client.connection as client_connection
from proton import Delivery
from rabbitmq_amqp_python_client import (
    AddressHelper,
    AMQPMessagingHandler,
    ClassicQueueSpecification,
    ConsumerOptions,
    ConsumerSettleStrategy,
    Converter,
    Environment,
    QuorumQueueSpecification,
    symbol,
)

env = os.environ
QUEUE = env.get("WORKER_QUEUE") or "task_queue"
SECONDS_PER_DOT = float(env.get("WORKER_SECONDS_PER_DOT") or 1)
FAIL_ON = env.get("WORKER_FAIL_ON")
CRASH_ON = env.get("WORKER_CRASH_ON")
CONNECTION_NAME = env.get("WORKER_CONNECTION_NAME") or "amqp 1.0 worker"
PRE_SETTLED = env.get("WORKER_AUTO_ACK") == "1"
SETTLE_FAILED = env.get("WORKER_SETTLE_FAILED")

# The harness tells workers apart by the client property connection_name, and this client has no
# public way to set a connection's properties: the one place it opens a connection is the name
# BlockingConnection in its connection module, which takes Proton's `properties` through. Pinned
# to 1.0.1 (the manifest); when a version opens its connections another way, the check after
# dial() below ends the worker with one line instead of leaving it unnamed.
_opened = []
_blocking_connection = client_connection.BlockingConnection


def _named_connection(*args, **kwargs):
    kwargs.setdefault("properties", {symbol("connection_name"): CONNECTION_NAME})
    _opened.append(True)
    return _blocking_connection(*args, **kwargs)


client_connection.BlockingConnection = _named_connection


def event(kind, **fields):
    with open(env["WORKER_EVENTS"], "a") as events:
        events.write(json.dumps({"event": kind, **fields}) + "\n")


def do_work(task):
    time.sleep(task.count(".") * SECONDS_PER_DOT)


class TaskHandler(AMQPMessagingHandler):
    """The tutorial's message handler: receive, work, and accept in a ``finally``."""

    def __init__(self):
        super().__init__()
        self.connection = None

    def on_amqp_message(self, event_):
        # The client recovers a lost connection and attaches the consumer again on the new one,
        # with no hook: a task on a new connection is the first of a new consumer.
        if self.connection is not None and event_.connection is not self.connection:
            event("consuming")
        self.connection = event_.connection
        task = Converter.bytes_to_string(event_.message.body)
        print(f" [x] Received '{task}'", flush=True)
        event("received", body=task, redelivered=not event_.message.first_acquirer)
        failed = False
        try:
            if CRASH_ON and CRASH_ON in task:
                os.kill(os.getpid(), signal.SIGKILL)     # as a segfault would: no finally
            if FAIL_ON and FAIL_ON in task:
                print(f" [!] Failed '{task}'", flush=True)
                failed = True
                if SETTLE_FAILED:
                    return                              # settled below, with that outcome
                raise RuntimeError(f"task failed: {task}")
            do_work(task)
            event("done", body=task)
        finally:
            print(" [x] Done", flush=True)
            if PRE_SETTLED:
                pass                                    # the broker settled it as it sent it
            elif failed and SETTLE_FAILED == "released":
                self.delivery_context.requeue(event_)
            elif failed and SETTLE_FAILED == "modified":
                delivery = event_.delivery
                delivery.local.failed = True
                delivery.local.undeliverable = False
                delivery.update(Delivery.MODIFIED)
                delivery.settle()
            elif failed and SETTLE_FAILED == "rejected":
                self.delivery_context.discard(event_)
            else:
                self.delivery_context.accept(event_)


def queue_specification():
    dead_letter = env.get("WORKER_DEAD_LETTER")
    dead = {"dead_letter_exchange": "", "dead_letter_routing_key": dead_letter} if dead_letter else {}
    if (env.get("WORKER_QUEUE_TYPE") or "classic") == "quorum":
        limit = env.get("WORKER_DELIVERY_LIMIT")
        return QuorumQueueSpecification(name=QUEUE, deliver_limit=int(limit) if limit else None, **dead)
    return ClassicQueueSpecification(name=QUEUE, **dead)


def main():
    environment = Environment(uri=env.get("WORKER_URL") or "amqp://guest:guest@localhost:5672/")
    connection = environment.connection()
    connection.dial()
    if not _opened:
        print("worker.py: rabbitmq-amqp-python-client no longer opens its connection through "
              "connection.BlockingConnection: the connection cannot be named", file=sys.stderr)
        return 2
    management = connection.management()
    management.declare_queue(queue_specification())
    management.close()

    print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
    # Options only for a pre-settled link: without them the client takes its default path (the
    # one its examples show), which a ConsumerOptions would change (another receiver set-up, on
    # recovery too).
    options = ConsumerOptions(settle_strategy=ConsumerSettleStrategy.PreSettled) if PRE_SETTLED else None
    credit = None if env.get("WORKER_CLIENT_PREFETCH") == "1" else int(env.get("WORKER_PREFETCH") or 1)
    consumer = connection.consumer(AddressHelper.queue_address(QUEUE), message_handler=TaskHandler(),
                                   consumer_options=options, credit=credit)
    event("consuming")
    try:
        consumer.run()
    except KeyboardInterrupt:
        pass
    consumer.close()
    connection.close()
    environment.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

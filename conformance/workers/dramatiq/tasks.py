"""A Dramatiq actor that does the contract's work: a second per dot (WORKER_SECONDS_PER_DOT).

Run as Dramatiq documents it, `dramatiq tasks --processes 1 --threads 1`, with the queue
prefetch at 1 (dramatiq_queue_prefetch; WORKER_PREFETCH when given, 0 read as no limit);
Dramatiq declares its queue its own way (a dead-letter queue <queue>.XQ, a delay queue
<queue>.DQ), retries a failed task with backoff, and reconnects. Contract: docs/conformance.md.
"""

import json
import os
import signal
import time

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import Middleware

env = os.environ
url = env.get("WORKER_URL", "amqp://")
if env.get("WORKER_HEARTBEAT"):
    url += ("&" if "?" in url else "?") + f"heartbeat={env['WORKER_HEARTBEAT']}"


def event(kind, **fields):
    with open(env["WORKER_EVENTS"], "a") as events:
        events.write(json.dumps({"event": kind, **fields}) + "\n")


class Report(Middleware):
    """The contract's event received, with the flag."""

    def before_process_message(self, broker, message):
        task = message.args[0] if message.args else ""
        print(f" [x] Received {task}", flush=True)
        event("received", body=task, redelivered=bool(getattr(message, "redelivered", False)))


class ReportingBroker(RabbitmqBroker):
    """The contract's event consuming, each time dramatiq's consumer thread (re)starts consuming
    the task queue: dramatiq makes a new consumer after a lost connection or channel ("Restarting
    consumer in 3.00 seconds"), and no middleware hook tells of it."""

    def consume(self, queue_name, prefetch=1, timeout=5000):
        consumer = super().consume(queue_name, prefetch=prefetch, timeout=timeout)
        if queue_name == env.get("WORKER_QUEUE", "task_queue"):
            event("consuming")
        return consumer


broker = ReportingBroker(url=url, confirm_delivery=True)
broker.parameters.client_properties = {"connection_name": env.get("WORKER_CONNECTION_NAME", "dramatiq worker")}
broker.add_middleware(Report())
dramatiq.set_broker(broker)

SECONDS_PER_DOT = float(env.get("WORKER_SECONDS_PER_DOT", "1"))
FAIL_ON = env.get("WORKER_FAIL_ON")
CRASH_ON = env.get("WORKER_CRASH_ON")


@dramatiq.actor(queue_name=env.get("WORKER_QUEUE", "task_queue"), actor_name="work")
def work(task):
    if CRASH_ON and CRASH_ON in task:
        os.kill(os.getpid(), signal.SIGKILL)     # the process running the task, as a segfault would
    if FAIL_ON and FAIL_ON in task:
        raise RuntimeError(f"{task!r} mentions {FAIL_ON!r}")
    time.sleep(task.count(".") * SECONDS_PER_DOT)
    print(" [x] Done", flush=True)
    event("done", body=task)

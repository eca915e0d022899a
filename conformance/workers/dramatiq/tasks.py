"""A Dramatiq actor that does the contract's work: a second per dot (WORKER_SECONDS_PER_DOT).

Run as Dramatiq documents it, `dramatiq tasks --processes 1 --threads 1`, with the queue
prefetch at 1 (dramatiq_queue_prefetch; WORKER_PREFETCH when given, 0 read as no limit);
Dramatiq declares its queue its own way (a dead-letter queue <queue>.XQ, a delay queue
<queue>.DQ), retries a failed task with backoff, and reconnects. Contract: docs/conformance.md.
"""

import json
import os
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
    """The contract's events: consuming once the worker has booted, received with the flag."""

    def after_worker_boot(self, broker, worker):
        event("consuming")

    def before_process_message(self, broker, message):
        task = message.args[0] if message.args else ""
        print(f" [x] Received {task}", flush=True)
        event("received", body=task, redelivered=bool(getattr(message, "redelivered", False)))


broker = RabbitmqBroker(url=url, confirm_delivery=True)
broker.parameters.client_properties = {"connection_name": env.get("WORKER_CONNECTION_NAME", "dramatiq worker")}
broker.add_middleware(Report())
dramatiq.set_broker(broker)

SECONDS_PER_DOT = float(env.get("WORKER_SECONDS_PER_DOT", "1"))
FAIL_ON = env.get("WORKER_FAIL_ON")


@dramatiq.actor(queue_name=env.get("WORKER_QUEUE", "task_queue"), actor_name="work")
def work(task):
    if FAIL_ON and FAIL_ON in task:
        raise RuntimeError(f"{task!r} mentions {FAIL_ON!r}")
    time.sleep(task.count(".") * SECONDS_PER_DOT)
    print(" [x] Done", flush=True)
    event("done", body=task)

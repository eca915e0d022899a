"""A Celery app whose one task does the contract's work: a second per dot (WORKER_SECONDS_PER_DOT).

Two profiles (CELERY_PROFILE): "defaults", Celery's own settings (the task is acknowledged as
it is received, four tasks prefetched per process), and "reliable", what Celery documents for
tasks that must survive a lost worker (task_acks_late, task_reject_on_worker_lost, a prefetch
multiplier of 1). Either way one worker process (--concurrency 1), like the other
implementations' one consumer. Contract: docs/conformance.md.
"""

import json
import os
import signal
import time

from celery import Celery, signals
from kombu import Queue

env = os.environ
app = Celery("conformance", broker=env.get("WORKER_URL", "amqp://"))

queue = env.get("WORKER_QUEUE", "task_queue")
arguments = {}
if env.get("WORKER_QUEUE_TYPE", "classic") != "classic":
    arguments["x-queue-type"] = env["WORKER_QUEUE_TYPE"]
if env.get("WORKER_DELIVERY_LIMIT") and env.get("WORKER_QUEUE_TYPE") == "quorum":
    arguments["x-delivery-limit"] = int(env["WORKER_DELIVERY_LIMIT"])
if env.get("WORKER_DEAD_LETTER"):
    arguments["x-dead-letter-exchange"] = ""
    arguments["x-dead-letter-routing-key"] = env["WORKER_DEAD_LETTER"]

app.conf.task_default_queue = queue
app.conf.task_queues = [Queue(queue, routing_key=queue, durable=True, queue_arguments=arguments)]
app.conf.broker_transport_options = {"confirm_publish": True, "client_properties": {
    "connection_name": env.get("WORKER_CONNECTION_NAME", "celery worker")}}
if env.get("WORKER_HEARTBEAT"):
    app.conf.broker_heartbeat = int(env["WORKER_HEARTBEAT"])
if env.get("CELERY_PROFILE") == "reliable":
    app.conf.task_acks_late = True
    app.conf.task_reject_on_worker_lost = True
    app.conf.worker_prefetch_multiplier = 1
if env.get("WORKER_PREFETCH"):
    app.conf.worker_prefetch_multiplier = int(env["WORKER_PREFETCH"])     # x --concurrency 1

SECONDS_PER_DOT = float(env.get("WORKER_SECONDS_PER_DOT", "1"))
FAIL_ON = env.get("WORKER_FAIL_ON")
CRASH_ON = env.get("WORKER_CRASH_ON")


def event(kind, **fields):
    """One line, appended in one write (the pool's processes share the file)."""
    with open(env["WORKER_EVENTS"], "a") as events:
        events.write(json.dumps({"event": kind, **fields}) + "\n")


@signals.worker_ready.connect
def consuming(**_):
    event("consuming")


@app.task(name="work", bind=True)
def work(self, task):
    print(f" [x] Received {task}", flush=True)
    event("received", body=task, redelivered=bool((self.request.delivery_info or {}).get("redelivered")))
    if CRASH_ON and CRASH_ON in task:
        os.kill(os.getpid(), signal.SIGKILL)     # the process running the task, as a segfault would
    if FAIL_ON and FAIL_ON in task:
        raise RuntimeError(f"{task!r} mentions {FAIL_ON!r}")
    time.sleep(task.count(".") * SECONDS_PER_DOT)
    print(" [x] Done", flush=True)
    event("done", body=task)

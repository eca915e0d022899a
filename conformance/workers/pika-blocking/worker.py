"""The tutorial's worker.py on pika's BlockingConnection: the task runs in the consumer callback,
on the thread that also serves the connection; prefetch 1, ack after the work, no reconnection.

Contract: docs/conformance.md (environment WORKER_*, events as JSON lines in WORKER_EVENTS).
"""

import json
import os
import signal
import time

import pika

env = os.environ
events = open(env["WORKER_EVENTS"], "a", buffering=1)


def event(kind, **fields):
    events.write(json.dumps({"event": kind, **fields}) + "\n")


params = pika.URLParameters(env["WORKER_URL"])
if env.get("WORKER_HEARTBEAT"):
    params.heartbeat = int(env["WORKER_HEARTBEAT"])
params.client_properties = {"connection_name": env.get("WORKER_CONNECTION_NAME", "worker")}
connection = pika.BlockingConnection(params)
channel = connection.channel()

arguments = {}
if env.get("WORKER_QUEUE_TYPE", "classic") != "classic":
    arguments["x-queue-type"] = env["WORKER_QUEUE_TYPE"]
if env.get("WORKER_DELIVERY_LIMIT") and env.get("WORKER_QUEUE_TYPE") == "quorum":
    arguments["x-delivery-limit"] = int(env["WORKER_DELIVERY_LIMIT"])
if env.get("WORKER_DEAD_LETTER"):
    arguments["x-dead-letter-exchange"] = ""
    arguments["x-dead-letter-routing-key"] = env["WORKER_DEAD_LETTER"]
queue = env.get("WORKER_QUEUE", "task_queue")
channel.queue_declare(queue=queue, durable=True, arguments=arguments)

prefetch = int(env.get("WORKER_PREFETCH") or 1)
if prefetch:
    channel.basic_qos(prefetch_count=prefetch)
seconds_per_dot = float(env.get("WORKER_SECONDS_PER_DOT", "1"))
fail_on = env.get("WORKER_FAIL_ON")
crash_on = env.get("WORKER_CRASH_ON")
auto_ack = env.get("WORKER_AUTO_ACK") == "1"     # the first tutorial's auto_ack=True


def callback(ch, method, properties, body):
    task = body.decode()
    print(f" [x] Received {task}", flush=True)
    event("received", body=task, redelivered=method.redelivered)
    if crash_on and crash_on in task:
        os.kill(os.getpid(), signal.SIGKILL)            # as a segfault or the OOM killer would
    if fail_on and fail_on in task:
        print(f" [!] Failed {task}: it mentions {fail_on!r}", flush=True)
        if not auto_ack:
            ch.basic_nack(delivery_tag=method.delivery_tag, requeue=True)
        return
    time.sleep(task.count(".") * seconds_per_dot)
    print(" [x] Done", flush=True)
    event("done", body=task)
    if not auto_ack:
        ch.basic_ack(delivery_tag=method.delivery_tag)


channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=auto_ack)
print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
event("consuming")
channel.start_consuming()

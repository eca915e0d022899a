"""A FastStream subscriber that does the contract's work: a second per dot
(WORKER_SECONDS_PER_DOT), awaited as FastStream's handlers are written (``async def``).

Run as FastStream documents it, ``faststream run tasks:app``. FASTSTREAM_PROFILE picks the
settings:

- unset: FastStream's defaults: its acknowledgement policy (REJECT_ON_ERROR: acknowledged once
  the handler returns, rejected without requeue when it raises), no prefetch limit unless
  WORKER_PREFETCH asks for one (through its ``Channel(prefetch_count=...)``), its robust
  connection (aio-pika's ``connect_robust``), its graceful timeout;
- ``reliable``: what FastStream's guide gives for not losing a failing task and for taking one
  task at a time: ``AckPolicy.NACK_ON_ERROR`` (a task that raised is nacked with requeue, to be
  tried again) and ``Channel(prefetch_count=1)`` unless WORKER_PREFETCH says otherwise.

WORKER_AUTO_ACK=1, in either profile: FastStream's ``AckPolicy.ACK_FIRST``, which it consumes
with aio-pika's ``no_ack=True`` (the broker forgets a task as it sends it).

The queue is declared by FastStream (``RabbitQueue``: durable, and the arguments the contract
asks for). Contract: docs/conformance.md.
"""

import asyncio
import contextlib
import json
import os
import signal
import urllib.parse

from faststream import AckPolicy, FastStream
from faststream.rabbit import QueueType, RabbitBroker, RabbitMessage, RabbitQueue
from faststream.rabbit.schemas import Channel

env = os.environ
# The connection's name and the heartbeat go in the URL's query, as aio-pika takes them.
query = {"name": env.get("WORKER_CONNECTION_NAME", "faststream worker")}
if env.get("WORKER_HEARTBEAT"):
    query["heartbeat"] = env["WORKER_HEARTBEAT"]
url = env.get("WORKER_URL", "amqp://")
url += ("&" if "?" in url else "?") + urllib.parse.urlencode(query)
reliable = env.get("FASTSTREAM_PROFILE") == "reliable"
prefetch = int(env["WORKER_PREFETCH"]) if env.get("WORKER_PREFETCH") else (1 if reliable else 0)

broker = RabbitBroker(url, default_channel=Channel(prefetch_count=prefetch) if prefetch else None)
app = FastStream(broker)

quorum = env.get("WORKER_QUEUE_TYPE") == "quorum"
arguments = {}
if quorum and env.get("WORKER_DELIVERY_LIMIT"):
    arguments["x-delivery-limit"] = int(env["WORKER_DELIVERY_LIMIT"])
if env.get("WORKER_DEAD_LETTER"):
    arguments.update({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": env["WORKER_DEAD_LETTER"]})
queue = RabbitQueue(env.get("WORKER_QUEUE", "task_queue"), queue_type=QueueType.QUORUM if quorum else QueueType.CLASSIC,
                    arguments=arguments or None)

SECONDS_PER_DOT = float(env.get("WORKER_SECONDS_PER_DOT", "1"))
FAIL_ON = env.get("WORKER_FAIL_ON")
CRASH_ON = env.get("WORKER_CRASH_ON")


def event(kind, **fields):
    with open(env["WORKER_EVENTS"], "a") as events:
        events.write(json.dumps({"event": kind, **fields}) + "\n")


@app.after_startup
async def consuming():
    """FastStream's hook once its subscribers are started: the consumer is registered."""
    event("consuming")


#: The channel the last task came on. aio-pika's robust channel, when the broker closes it (a
#: consumer timeout) or the connection is lost, opens a new channel and consumes again with the
#: same consumer tag, often on the same channel number: the broker's listing cannot tell that
#: consumer from the first, and FastStream has no hook for it. The task's own channel
#: (aio-pika's ``IncomingMessage.channel``) can: a task on a new channel is the first of a new
#: consumer, told as "consuming" before its "received". The object is held, so ``is`` cannot
#: match a new channel at an old one's address.
last_channel = None


if env.get("WORKER_AUTO_ACK") == "1":
    policy = {"ack_policy": AckPolicy.ACK_FIRST}
elif reliable:
    policy = {"ack_policy": AckPolicy.NACK_ON_ERROR}
else:
    policy = {}                                  # FastStream's default


@broker.subscriber(queue, **policy)
async def work(task: str, message: RabbitMessage):
    global last_channel
    with contextlib.suppress(Exception):         # closed already: the ack will tell FastStream
        channel = message.raw_message.channel
        if last_channel is not None and channel is not last_channel:
            event("consuming")
        last_channel = channel
    print(f" [x] Received {task}", flush=True)
    event("received", body=task, redelivered=bool(message.raw_message.redelivered))
    if CRASH_ON and CRASH_ON in task:
        os.kill(os.getpid(), signal.SIGKILL)     # the process running the task, as a segfault would
    if FAIL_ON and FAIL_ON in task:
        raise RuntimeError(f"{task!r} mentions {FAIL_ON!r}")
    await asyncio.sleep(task.count(".") * SECONDS_PER_DOT)
    print(" [x] Done", flush=True)
    event("done", body=task)

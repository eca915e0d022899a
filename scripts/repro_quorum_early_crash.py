"""A quorum queue killed right after its declaration comes back empty: a reproduction.

With pika alone (no code of this project), for the defect quorum_early_crash
(features/defects.toml, docs/rabbitmq.md):

    python scripts/repro_quorum_early_crash.py AMQP_URL CRASH_COMMAND START_COMMAND [DELAY]

e.g. for a container named rmq: ... amqp://guest:guest@127.0.0.1:5672/ "docker kill -s KILL rmq"
"docker start rmq". It declares a quorum queue "early" on the vhost of the URL, publishes 200
persistent tasks with publisher confirms, runs CRASH_COMMAND (a SIGKILL of the node) DELAY
seconds (0.2) after the declaration, then START_COMMAND, and for 60 s after the broker answers
again prints what the queue holds (and, first and last, what basic.get gets), whenever that
changes. Then the node's log tells why (on
4.3.6, measured 2026-12-06: "names.dets not properly closed, repairing", then "configured member
of queue 'early' ... was not found on this node. Starting member as a new one. Context:
name_not_registered", and the queue holds 0 of the 200 confirmed tasks). Exits 0.
"""

import shlex
import subprocess
import sys
import threading
import time

import pika


def probe(connection, get, patience=10.0):
    """What the queue says: its depth (passive declare) and, with ``get``, what basic.get gets
    (the task goes back as the connection closes; asked only now and then, since each such
    return counts toward a quorum queue's delivery limit, 20 by default on 4.x), each given
    ``patience`` seconds to answer (a queue whose Ra server does not run may answer nothing)."""
    said = []

    def ask():
        try:
            channel = connection.channel()
            depth = channel.queue_declare("early", passive=True).method.message_count
            said.append(f"holds {depth} ready")
            if get:
                method, _, _ = channel.basic_get("early", auto_ack=False)
                said.append(f"basic.get {'gets nothing' if method is None else 'gets a task'}")
            connection.close()
        except pika.exceptions.AMQPError as exc:
            said.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    asking.join(patience)
    return "; ".join(said) + ("" if not asking.is_alive() else f"; no answer within {patience:.0f} s")


def main(argv=None):
    args = (argv or sys.argv[1:])
    url, crash, start = args[:3]
    delay = float(args[3]) if len(args) > 3 else 0.2
    params = pika.URLParameters(url)
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    declared = time.monotonic()
    channel.queue_declare("early", durable=True, arguments={"x-queue-type": "quorum"})
    channel.confirm_delivery()
    for n in range(200):
        channel.basic_publish("", "early", f"task {n}".encode(), pika.BasicProperties(delivery_mode=2))
    print(f"200 tasks confirmed {time.monotonic() - declared:.2f} s after the declaration")
    while time.monotonic() - declared < delay:
        connection.process_data_events(time_limit=0.01)
    subprocess.run(shlex.split(crash), check=True)
    print(f"crashed {time.monotonic() - declared:.2f} s after the declaration")
    subprocess.run(shlex.split(start), check=True)
    answered, last = None, None
    while answered is None or time.monotonic() - answered < 60:
        try:
            connection = pika.BlockingConnection(params)
        except pika.exceptions.AMQPConnectionError:
            time.sleep(0.5)                     # the node is still booting
            continue
        now = time.monotonic()
        answered = answered or now
        seen = probe(connection, get=answered == now or now - answered > 50)
        if seen != last:
            print(f"{time.monotonic() - answered:5.1f} s after the broker answered again: the queue {seen}")
            last = seen
        time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

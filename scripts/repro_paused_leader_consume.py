"""A subscription through another node while a quorum queue's leader node is paused: what waits.

    python scripts/repro_paused_leader_consume.py [--broker node|container] [--seconds S]

For docs/rabbitmq.md ("A paused node on RabbitMQ 3.10"). It boots a throwaway 3-node cluster
(this project's harness), declares a quorum queue, pauses the node that leads it (SIGSTOP of its
Erlang VM: it keeps its sockets and answers nothing) for S seconds (25), and has two clients,
with pika alone, connect to another node, one at once and one 12 s into the pause: each opens a
channel, declares the queue, sets a prefetch and subscribes. Every step's answer is printed as it
comes, in seconds from the pause, with the leader as the other node's management API names it
(asked every 2 s; a line appears only when it answers), then the resume. The cluster is
removed at the end. Measured on 3.10.8 (node, 2026-12-07): every step answers at once up to
basic.consume, whose consume-ok comes only after the resume (25.0 s), for both clients, and the
management API's queue query waits the whole pause too. Exits 0.
"""

import argparse
import sys
import threading
import time
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workqueue.testing import make_cluster  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=["node", "container"], default="node")
    parser.add_argument("--seconds", type=float, default=25.0, help="how long the pause lasts (25)")
    args = parser.parse_args(argv)
    queue = "paused-leader"
    with make_cluster(args.broker) as cluster:
        vhost = cluster.new_vhost()
        connection = pika.BlockingConnection(cluster.members[0].params(vhost))
        connection.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        connection.close()
        cluster.wait_replicated(vhost, queue, 60)
        leader = cluster.fault_member(vhost, queue)
        other = next(m for m in cluster.members if m is not leader)
        print(f"RabbitMQ {cluster.version}: leader {leader.node_name} paused for {args.seconds:g} s; "
              f"clients on {other.node_name}", flush=True)
        cluster.pause_member(leader)
        paused_at = time.monotonic()

        def say(what):
            print(f"{time.monotonic() - paused_at:6.2f} s  {what}", flush=True)

        def client(name):
            try:
                conn = pika.BlockingConnection(other.params(vhost, heartbeat=0))
                say(f"{name}: connection open")
                channel = conn.channel()
                say(f"{name}: channel open")
                channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
                say(f"{name}: queue.declare-ok")
                channel.basic_qos(prefetch_count=1)
                say(f"{name}: basic.qos-ok")
                channel.basic_consume(queue, lambda *_: None)
                say(f"{name}: basic.consume-ok")
                conn.close()
            except Exception as exc:               # what the broker or pika said, as it came
                say(f"{name}: {exc!r}")

        def watch():
            while time.monotonic() - paused_at < args.seconds:
                try:
                    named = other.management.queue(vhost, queue).get("leader")
                    say(f"the management API of {other.node_name} names the leader {named}")
                except Exception as exc:
                    say(f"the management API of {other.node_name}: {exc!r}"[:160])
                time.sleep(2)

        threads = [threading.Thread(target=client, args=("client 1",), daemon=True),
                   threading.Thread(target=watch, daemon=True)]
        for thread in threads:
            thread.start()
        time.sleep(min(12.0, args.seconds / 2))
        second = threading.Thread(target=client, args=("client 2 (started now)",), daemon=True)
        second.start()
        threads.append(second)
        time.sleep(max(0.0, args.seconds - (time.monotonic() - paused_at)))
        say("resuming the paused node")
        cluster.resume_member(leader)
        say("the cluster has it running again")
        for thread in threads:
            thread.join(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

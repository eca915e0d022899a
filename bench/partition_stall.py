"""How long a publisher on a majority node waits for its confirm after the queue's leader node
is cut off: one table.

A 3-node cluster (``--broker``: container, or node as root, each node in a network namespace of
its own), a quorum queue, its leader node's link dropped for ``--seconds``; one publisher per delay in
``--delays`` opens a connection to another node that many seconds after the cut and publishes
one task, and one more publishes after the heal. Each row says when it connected and when its
confirm came, counted from the cut. Measured 2026-12-02 (see docs/rabbitmq.md): the channels
opened in the first seconds wait for net_ticktime (65-70 s), the later ones are confirmed at once.

    WORKQUEUE_RABBITMQ_IMAGE=workqueue/rabbitmq:trixie python -m bench.partition_stall

Exit codes: 0 the table was printed, 2 bad usage, 3 no cluster could be started, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from workqueue import Producer, QueueSpec


def publish_after(member, vhost, queue, delay, cut_at, rows, name):
    threading.Event().wait(delay)   # the schedule of the experiment, not a synchronisation
    start = time.monotonic()
    row = {"publisher": name, "opened": round(start - cut_at, 1)}
    try:
        with Producer(member.params(vhost, heartbeat=2), queue, confirm_timeout=150) as producer:
            producer.publish(name)
        row["confirmed"] = round(time.monotonic() - cut_at, 1)
    except Exception as exc:  # reported in the table
        row["error"] = str(exc).splitlines()[0][:80]
    rows.append(row)


def measure(cluster, delays, seconds):
    from workqueue.testing import scenario_vhost
    queue = QueueSpec(queue_type="quorum")
    rows: list[dict] = []
    with scenario_vhost(cluster) as vhost:
        with Producer(cluster.members[0].params(vhost), queue) as producer:
            producer.publish("first")
        cluster.wait_replicated(vhost, queue.name, 60)
        leader = cluster.fault_member(vhost, queue.name)
        other = next(m for m in cluster.members if m is not leader)
        cut_at = time.monotonic()
        cluster.partition(leader)
        threads = [threading.Thread(target=publish_after, daemon=True,
                                    args=(other, vhost, queue, d, cut_at, rows, f"{d:g} s after the cut"))
                   for d in delays]
        for thread in threads:
            thread.start()
        threading.Event().wait(seconds)
        cluster.heal(leader)
        healed = round(time.monotonic() - cut_at, 1)
        threads.append(threading.Thread(target=publish_after, daemon=True,
                                        args=(other, vhost, queue, 0, cut_at, rows, "after the heal")))
        threads[-1].start()
        for thread in threads:
            thread.join(200)
    return leader.node_name, other.node_name, healed, rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.partition_stall", description=__doc__.split("\n\n")[0],
                                     epilog="exit codes: 0 printed, 2 bad usage, 3 no cluster, 130 interrupted")
    parser.add_argument("--delays", default="0.3,5,12,18",
                        help="seconds after the cut at which each publisher connects (default 0.3,5,12,18)")
    parser.add_argument("--seconds", type=float, default=20, help="length of the partition (default 20)")
    parser.add_argument("--broker", choices=("container", "node"), default="container",
                        help="the cluster's backend (default container; node needs root)")
    args = parser.parse_args(argv)
    try:
        delays = [float(d) for d in args.delays.split(",")]
    except ValueError:
        parser.error(f"--delays: not a list of numbers: {args.delays!r}")
    try:
        from workqueue.testing import BrokerError, make_cluster
    except ImportError:
        print("partition_stall: needs the test extra (pip install -e '.[test]')", file=sys.stderr)
        return 2
    try:
        with make_cluster(args.broker) as cluster:
            if not cluster.can_partition:
                print(f"partition_stall: a {args.broker} cluster cannot be partitioned here", file=sys.stderr)
                return 3
            leader, other, healed, rows = measure(cluster, delays, args.seconds)
            version = cluster.version
    except BrokerError as exc:
        print(f"partition_stall: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("partition_stall: interrupted", file=sys.stderr)
        return 130
    print(f"RabbitMQ {version}: leader {leader} cut off for {args.seconds:g} s (healed at {healed} s); "
          f"publishers on {other}")
    print(f"{'publisher':<22} {'connected':>9} {'confirm':>9}")
    for row in sorted(rows, key=lambda r: r["opened"]):
        confirm = f"{row['confirmed']} s" if "confirmed" in row else row["error"]
        print(f"{row['publisher']:<22} {row['opened']:>7} s {confirm:>9}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make demo``: a throwaway broker, two named workers, round robin then fair dispatch.

Everything it starts (broker, workers) is torn down at the end, also on Ctrl+C, SIGTERM or an
error (exit 130 when interrupted, with one line).
"""

import argparse
import signal
import sys
import threading

from workqueue.producer import Producer
from workqueue.testing import MissingExtra, make_broker, wait_until
from workqueue.testing.processes import WorkerPool, stopped_by_signals
from workqueue.urls import redact

_print_lock = threading.Lock()


def say(line):
    with _print_lock:
        print(line, flush=True)


def run(backend=None, seconds_per_dot=0.3):
    say(" [demo] starting a throwaway RabbitMQ ...")
    with make_broker(backend) as broker:
        say(f" [demo] RabbitMQ {broker.version} ({broker.kind} backend) at {redact(broker.url())}")
        params = broker.params()

        say("\n [demo] 1. Round-robin dispatching: workers with no prefetch limit, 6 equal tasks")
        rounds = [f"Task {n}." for n in range(1, 7)]
        _scene(broker, params, ["--prefetch", "0"], rounds, seconds_per_dot, "round-robin")

        say("\n [demo] 2. Fair dispatch: prefetch 1; a heavy task, then 5 light ones")
        fair = ["Heavy task.........."] + [f"Light task {n}." for n in range(1, 6)]
        _scene(broker, params, ["--prefetch", "1"], fair, seconds_per_dot, "fair")

        def reported():   # the management API reports a queue's numbers a moment after the fact
            rows = broker.management.queues("/")
            return rows if all(r["messages_ready"] is not None and r["consumers"] == 0 for r in rows) else None
        try:
            rows = wait_until(reported, 15, "the queues' numbers")
        except TimeoutError:
            rows = broker.management.queues("/")
        say("\n [demo] queues now: " + ", ".join(
            f"{r['name']}: {_n(r['messages_ready'])} ready, {_n(r['messages_unacknowledged'])} unacked"
            for r in rows))
        say(" [demo] tearing down the broker and workers")
    say(" [demo] done")


def _n(value):
    return "?" if value is None else value        # not reported yet: unknown, not 0


def _scene(broker, params, options, tasks, seconds_per_dot, queue):
    pool = WorkerPool(broker.url(), default_options=["--queue", queue, "--seconds-per-dot",
                                                     str(seconds_per_dot), *options], on_line=say)
    try:
        for name in ("alice", "bob"):
            pool.start(name).wait_consuming(60)
        from workqueue.spec import QueueSpec
        # The workers declared it as today's tutorial does: a quorum queue.
        with Producer(params, QueueSpec(queue, queue_type="quorum")) as producer:
            producer.publish_many(tasks)
        for task in tasks:
            say(f" [x] Sent {task!r}")
        total = len(tasks)
        workers = list(pool)
        workers[0].wait_for(lambda _l: sum(w.done_count() for w in workers) >= total, 120,
                            f"{total} tasks to be done")
        for w in workers:
            say(f" [demo] {w.name} did {w.received()}")
        # Stopped as an operator would (SIGTERM: the current ack is sent, then exit 0): killed
        # right after its last "Done", a worker could take that task's ack with it, and the
        # task would show as ready again in "queues now" (seen 2026-12-02: "fair: 1 ready").
        for w in workers:
            w.signal(signal.SIGTERM)
        for w in workers:
            w.wait_exit(30)
    finally:
        pool.close()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__.split("\n\n")[0],
                                epilog="exit codes: 0 done; 1 an error; 2 bad usage, or the test extra is missing; "
                                       "130 interrupted (Ctrl+C, SIGTERM)")
    p.add_argument("--broker", default=None, choices=("auto", "node", "container"),
                   help="broker backend (env WORKQUEUE_BROKER; default auto)")
    p.add_argument("--seconds-per-dot", type=float, default=0.3)
    args = p.parse_args(argv)
    try:
        with stopped_by_signals("demo"):
            run(args.broker, args.seconds_per_dot)
    except MissingExtra as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        print(f"demo: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

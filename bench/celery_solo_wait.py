"""Celery's solo worker at prefetch 1 with late acks: the waits between its tasks, and why.

    python -m bench.celery_solo_wait [--broker node|container] [-n N] [--seconds S]

For bench/README.md ("Celery's solo worker at prefetch 1"). On one throwaway broker, three Celery
workers in turn, each with one pool slot, prefetch multiplier 1 and ``task_acks_late`` (the
profile Celery's guide gives for one task at a time): the solo pool with the three start-up
flags CloudAMQP's guide and the bench's row use (--without-heartbeat --without-mingle
--without-gossip), the solo pool with Celery's defaults, and the prefork pool with the three
flags. Each is sent N tasks (40) that note when they ran, and runs until they are all done or S
seconds (60) have passed. Printed for each: the tasks done, every gap of more than 0.5 s between
two tasks, and what the broker's management API counted in the queue during the gap (sampled
every 0.25 s, read from 1.5 s into the gap: its statistics are emitted every 0.5 s here and one
read 0.6 s in still showed the moment before the gap).

What kombu's event loop predicts (bench/README.md has the reading): a solo worker runs a task
inside the loop's callbacks; an ack scheduled there waits for the loop's next poll to return,
which is the next due timer or 10 s at the most. At prefetch 1 the broker sends nothing more
until that ack, so the worker waits: 10 s with the three flags (no timer due sooner), at most
about 2 s with the defaults (their timers), while the queue holds 1 unacknowledged task, one
the worker has finished. The prefork pool's results come back as poll events: no wait.

Exit codes: 0 the three workers behaved as predicted, 1 one did not (a line says which), 2 bad
usage or Celery not installed, 3 no broker could be started, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

TIMES_ENV = "WORKQUEUE_SOLO_WAIT_TIMES"
URL_ENV = "WORKQUEUE_SOLO_WAIT_URL"
FLAGS = ["--without-heartbeat", "--without-mingle", "--without-gossip"]
#: (name, pool, extra flags, what kombu's loop predicts: (least, most) seconds of every gap over
#: 0.5 s, and whether there must be one).
WORKERS = [
    ("solo, the three flags", "solo", FLAGS, (9.0, 11.0), True),
    ("solo, Celery's defaults", "solo", [], (0.5, 2.5), False),
    ("prefork -c 1, the three flags", "prefork", FLAGS, None, False),
]
GAP = 0.5
#: Seconds into a gap from which the management API's counts are taken as the gap's.
SETTLE = 1.5


def make_app():
    """The Celery app of the workers and the sender: the bench's settings (late acks), one noted task."""
    from celery import Celery

    from bench.peers import CELERY_CONF
    app = Celery("wqsolowait", broker=os.environ[URL_ENV])
    app.conf.update(CELERY_CONF)

    @app.task(name="wqsolowait.note")
    def note(i):
        with open(os.environ[TIMES_ENV], "a") as f:
            f.write(f"{time.time()}\n")
    return app, note


def __getattr__(name):
    # ``celery -A bench.celery_solo_wait:app``: built on first access, in the worker.
    if name == "app":
        return make_app()[0]
    raise AttributeError(name)


def sample_queue(broker, vhost, queue, stop, samples):
    """(time, ready, unacked) every 0.25 s from the management API, until ``stop``."""
    while not stop.wait(0.25):
        try:
            for row in broker.management.queues(vhost):
                if row["name"] == queue:
                    samples.append((time.time(), row.get("messages_ready"), row.get("messages_unacknowledged")))
        except Exception:  # a missed sample is a gap in the samples, said as "no sample"
            pass


def run_worker(broker, vhost, pool, flags, n, seconds, workdir):
    """Send n tasks, run one worker until they are done or ``seconds`` pass: (task times, samples)."""
    from bench.peers import stop_worker
    from workqueue.testing.processes import die_with_parent
    queue = f"solo-wait-{pool}-{len(flags)}"
    times = os.path.join(workdir, queue)
    _, note = make_app()
    with note.app.producer_or_acquire() as producer:
        for i in range(n):
            note.apply_async((i,), queue=queue, producer=producer)
    note.app.close()
    stop, samples = threading.Event(), []
    sampler = threading.Thread(target=sample_queue, args=(broker, vhost, queue, stop, samples), daemon=True)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.celery_solo_wait:app", "worker", f"--pool={pool}",
         "--concurrency=1", "--prefetch-multiplier=1", "-Q", queue, "-l", "ERROR",
         "--hostname", f"{queue}@%h", *flags],
        env={**os.environ, TIMES_ENV: times}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    sampler.start()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(read_times(times)) < n and worker.poll() is None:
            stop.wait(0.2)                     # polling the task file, with a deadline
    finally:
        stop_worker(worker)
        stop.set()
        sampler.join(10)
    return read_times(times), samples


def read_times(path):
    try:
        with open(path) as f:
            return [float(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def gaps_of(times, samples):
    """[(seconds, {unacked counts sampled in the gap})] for every gap over GAP seconds."""
    gaps = []
    for a, b in zip(times, times[1:]):
        if b - a > GAP:
            seen = {u for t, _, u in samples if a + SETTLE <= t <= b}
            gaps.append((b - a, seen))
    return gaps


def verdict(gaps, predicted, needs_one):
    """None when the gaps are what kombu's loop predicts, else why not."""
    if predicted is None:
        return f"{len(gaps)} gap(s), predicted none" if gaps else None
    least, most = predicted
    if needs_one and not gaps:
        return "no gap, predicted at least one"
    off = [round(g, 1) for g, _ in gaps if not least <= g <= most]
    if off:
        return f"gap(s) of {off} s, predicted {least:g}-{most:g} s"
    held = [seen for g, seen in gaps if g >= 3 and seen != {1}]
    if held:
        return f"unacked counts {held} during a gap, predicted {{1}}"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.celery_solo_wait", description=__doc__.split("\n\n")[0],
        epilog="exit codes: 0 as predicted, 1 not, 2 bad usage, 3 no broker, 130 interrupted")
    parser.add_argument("--broker", choices=("node", "container"), default="node")
    parser.add_argument("-n", type=int, default=40, help="tasks per worker (40)")
    parser.add_argument("--seconds", type=float, default=60.0, help="longest run of a worker (60)")
    args = parser.parse_args(argv)
    if args.n < 2 or args.seconds <= 0:
        parser.error("-n must be at least 2 and --seconds positive")
    try:
        import celery
        import kombu
    except ImportError:
        print("celery_solo_wait: needs the bench extra (pip install -e '.[bench]')", file=sys.stderr)
        return 2
    from bench.peers import celery_url
    from workqueue.testing import BrokerError, make_broker
    from workqueue.testing.processes import stopped_by_signals
    failed = []
    try:
        with stopped_by_signals("celery_solo_wait"), make_broker(args.broker) as broker, \
                tempfile.TemporaryDirectory() as workdir:
            vhost = "/"
            os.environ[URL_ENV] = celery_url(broker.params(vhost))
            print(f"RabbitMQ {broker.version} ({args.broker}), celery {celery.__version__}, kombu "
                  f"{kombu.__version__}: {args.n} tasks a worker, prefetch multiplier 1, late acks", flush=True)
            for name, pool, flags, predicted, needs_one in WORKERS:
                times, samples = run_worker(broker, vhost, pool, flags, args.n, args.seconds, workdir)
                gaps = gaps_of(times, samples)
                said = ", ".join(f"{g:.1f} s (unacked {sorted(seen) if seen else 'no sample'})" for g, seen in gaps)
                why = verdict(gaps, predicted, needs_one)
                print(f"{name:<30} {len(times):>3}/{args.n} done; gaps over {GAP:g} s: {said or 'none'}"
                      f"{'' if why is None else '  NOT AS PREDICTED: ' + why}", flush=True)
                if why is not None:
                    failed.append(name)
    except BrokerError as exc:
        print(f"celery_solo_wait: {exc}", file=sys.stderr)
        return 3
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

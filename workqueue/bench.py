"""``make bench``: workqueue against raw pika, Dramatiq and Celery, on one throwaway broker.

Every figure is the median of --runs runs, shown with its ratio to raw pika in the same run.
Everyone gets the same durability: durable queue, persistent messages, publisher confirms
where the library has them, ack after the task. Anomalies (a stalled run, a partial drain, a
library that is not installed) are reported in the table, not dropped. The last rows are
failure-detection latencies of workqueue's worker: SIGKILL of a busy worker to its task
starting on another; broker back up to a worker consuming again.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

import pika

from workqueue import bench_peers
from workqueue.consumer import Worker
from workqueue.producer import Producer
from workqueue.queue import QueueSpec
from workqueue.testing import make_broker, wait_until
from workqueue.testing.processes import WorkerProcess, stopped_by_signals

MARKS_ENV = "WQ_BENCH_TASK_MARKS"


def mark_start(delivery):
    """Worker handler for the latency rows: note when a task starts; a "long" task then lasts."""
    with open(os.environ[MARKS_ENV], "a") as f:
        f.write(f"{time.time()} {os.getpid()} {delivery.text}\n")
    if delivery.text == "long":
        time.sleep(60)


def _fresh_queue(params, name):
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_delete(name)
    ch.queue_declare(name, durable=True)
    conn.close()


def pika_blocking_publish(params, queue, n, confirm):
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    if confirm:
        ch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    start = time.perf_counter()
    for i in range(n):
        ch.basic_publish("", queue, b"task %d" % i, props)
    conn.close()           # flushes unconfirmed frames before closing
    return time.perf_counter() - start


def pika_select_publish(params, queue, n):
    """Raw pika's floor: SelectConnection, no confirms."""
    result = {}
    props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)

    def on_channel(ch):
        result["start"] = time.perf_counter()
        for i in range(n):
            ch.basic_publish("", queue, b"task %d" % i, props)
        # A synchronous round trip after the publishes: they have all been read by the broker.
        ch.queue_declare(queue, durable=True, callback=lambda _f: finish())

    def finish():
        result["end"] = time.perf_counter()
        conn.close()

    conn = pika.SelectConnection(params, on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
                                 on_close_callback=lambda c, r: c.ioloop.stop())
    conn.ioloop.start()
    return result["end"] - result["start"]


def pika_select_confirmed(params, queue, n):
    """Raw pika, SelectConnection, confirm mode, everything in flight at once: done at the last
    confirm. What any confirmed publisher can reach on this broker (it has to persist first)."""
    result = {}
    props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)

    def on_confirm(frame):
        if frame.method.delivery_tag >= n and "end" not in result:
            result["end"] = time.perf_counter()
            conn.close()

    def on_channel(ch):
        def publish(_frame):
            result["start"] = time.perf_counter()
            for i in range(n):
                ch.basic_publish("", queue, b"task %d" % i, props)
        ch.confirm_delivery(on_confirm, callback=publish)

    conn = pika.SelectConnection(params, on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
                                 on_close_callback=lambda c, r: c.ioloop.stop())
    conn.ioloop.start()
    return result["end"] - result["start"]


def workqueue_publish(params, queue, n, window=1000):
    with Producer(params, QueueSpec(queue)) as producer:
        start = time.perf_counter()
        producer.publish_many((b"task %d" % i for i in range(n)), window=window)
        return time.perf_counter() - start


def pika_drain(params, queue, n, prefetch, timeout):
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=prefetch)
    count = [0]

    def on_message(ch, method, _props, _body):
        ch.basic_ack(method.delivery_tag)
        count[0] += 1
        if count[0] >= n:
            ch.stop_consuming()

    ch.basic_consume(queue, on_message)
    start = time.perf_counter()
    deadline = start + timeout
    while count[0] < n and time.perf_counter() < deadline:
        conn.process_data_events(time_limit=0.2)
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, count[0]


def workqueue_drain(params, queue, n, prefetch, timeout):
    count = [0]
    done = threading.Event()

    def handler(_delivery):
        count[0] += 1
        if count[0] >= n:
            done.set()

    worker = Worker(params, QueueSpec(queue), handler, prefetch=prefetch)
    thread = threading.Thread(target=worker.run, daemon=True)
    start = time.perf_counter()
    thread.start()
    done.wait(timeout)
    elapsed = time.perf_counter() - start
    worker.stop()
    thread.join(30)
    return elapsed, count[0]


def measure(broker, n, runs, prefetch, peer_tasks=5000):
    params = broker.params()
    rows = []   # (section, name, [rates], anomalies)

    def publish_row(name, fn):
        rates = []
        for r in range(runs):
            q = f"bench-{r}"
            _fresh_queue(params, q)
            rates.append(n / fn(q))
        rows.append(("publish", name, rates, []))

    publish_row("raw pika, SelectConnection, unconfirmed (floor)", lambda q: pika_select_publish(params, q, n))
    publish_row("raw pika, BlockingConnection, unconfirmed", lambda q: pika_blocking_publish(params, q, n, False))
    publish_row("raw pika, BlockingConnection, wait for each confirm",
                lambda q: pika_blocking_publish(params, q, max(n // 10, 100), True) * n / max(n // 10, 100))
    publish_row("raw pika, SelectConnection, all in flight, to the last confirm",
                lambda q: pika_select_confirmed(params, q, n))
    publish_row("workqueue publish_many, pipelined confirms (window 1000)", lambda q: workqueue_publish(params, q, n))

    peer_n = min(n, peer_tasks)
    peer_drains = {}
    for label, fn in (("Dramatiq send, confirm_delivery", "dramatiq"), ("Celery apply_async, confirm_publish", "celery")):
        rates, anomalies = [], []
        for pf in (1, prefetch):
            for r in range(runs):
                q = f"{fn}-{pf}-{r}"
                _fresh_queue(params, q) if fn == "celery" else _delete_queue(params, q)
                with tempfile.TemporaryDirectory() as marks:
                    try:
                        if fn == "dramatiq":
                            pub, drain, got, note = bench_peers.dramatiq_publish_and_drain(
                                broker.url(), q, peer_n, pf, 10, marks)
                        else:
                            pub, drain, got, note = bench_peers.celery_publish_and_drain(
                                params, q, peer_n, pf, 10, marks)
                    except bench_peers.Unavailable as exc:
                        anomalies = [str(exc)]
                        break
                rates.append(peer_n / pub)
                key = f"{'Dramatiq worker, 1 thread' if fn == 'dramatiq' else 'Celery solo worker, acks_late'}, prefetch {pf}"
                entry = peer_drains.setdefault(pf, {}).setdefault(key, ([], []))
                entry[0].append(max(got - 1, 0) / drain if drain > 0 else 0.0)
                if note:
                    entry[1].append(f"run {r + 1}: {note}, drained {got}/{peer_n}")
            _delete_queue(params, q)
        rows.append(("publish", f"{label} ({peer_n:,} tasks)", rates, anomalies))

    for pf in (1, prefetch):
        for name, fn in ((f"raw pika, prefetch {pf}", pika_drain), (f"workqueue Worker, prefetch {pf}", workqueue_drain)):
            rates, anomalies = [], []
            for r in range(runs):
                q = f"drain-{r}"
                _fresh_queue(params, q)
                workqueue_publish(params, q, n)
                elapsed, got = fn(params, q, n, pf, timeout=120)
                if got < n:
                    anomalies.append(f"run {r + 1}: drained {got}/{n}")
                rates.append(got / elapsed)
            rows.append(("drain", name, rates, anomalies))
        for key, (rates, anomalies) in peer_drains.get(pf, {}).items():
            rows.append(("drain", f"{key} ({peer_n:,} tasks)", rates, anomalies))
    return rows


def _delete_queue(params, name):
    conn = pika.BlockingConnection(params)
    conn.channel().queue_delete(name)
    conn.close()


def latency(broker, runs):
    """[(name, [seconds], anomalies)]: failure detection of workqueue's worker."""
    params = broker.params()
    out = []
    kill_times, anomalies = [], []
    with tempfile.TemporaryDirectory() as tmp:
        marks = os.path.join(tmp, "marks")
        env = {MARKS_ENV: marks}
        for r in range(runs):
            q = f"latency-{r}"
            _fresh_queue(params, q)
            options = ("--queue", q, "--handler", "workqueue.bench:mark_start")
            busy = WorkerProcess("busy", broker.url(), *options, env=env)
            spare = None
            try:
                busy.wait_consuming(60)
                with Producer(params, QueueSpec(q)) as producer:
                    producer.publish("long")
                wait_until(lambda: _marked(marks, busy.pid), 60, "the busy worker to start the task")
                spare = WorkerProcess("spare", broker.url(), *options, env=env)
                spare.wait_consuming(60)
                killed_at = time.time()
                busy.kill()
                started = wait_until(lambda: _marked(marks, spare.pid), 60, "the task to start on the spare worker")
                kill_times.append(started - killed_at)
            except TimeoutError as exc:
                anomalies.append(f"run {r + 1}: {exc}")
            finally:
                busy.close()
                if spare is not None:
                    spare.close()
    out.append(("SIGKILL of a busy worker to its task starting on another", kill_times, anomalies))

    back_times, anomalies = [], []
    consuming = []
    worker = WorkerProcess("w", broker.url(), "--queue", "latency-restart",
                           on_line=lambda line: consuming.append(time.monotonic()) if "Waiting for messages" in line else None)
    try:
        worker.wait_consuming(60)
        for r in range(max(1, runs - 1)):
            before = len(consuming)
            broker.stop()
            broker.start()                     # returns once our probe connects
            up = time.monotonic()
            try:
                wait_until(lambda: len(consuming) > before, 60, "the worker to consume again")
                back_times.append(max(0.0, consuming[before] - up))
            except TimeoutError as exc:
                anomalies.append(f"run {r + 1}: {exc}")
    finally:
        worker.close()
    out.append(("broker back up (probe answers) to a worker consuming again", back_times, anomalies))
    return out


def _marked(path, pid):
    try:
        with open(path) as f:
            for line in f:
                t, p, _ = line.split(" ", 2)
                if int(p) == pid:
                    return float(t)
    except OSError:
        pass
    return None


def format_table(rows, broker, n, runs, latencies=()):
    out = [f"RabbitMQ {broker.version} ({broker.kind}), N={n}, median of {runs} runs; everyone: durable queue, "
           f"persistent messages, confirms where the library has them, ack after the task",
           f"{'what':<10} {'how':<62} {'tasks/s':>10} {'x raw pika':>11}  notes"]
    floor = {"publish": None, "drain": None}
    for section, name, rates, anomalies in rows:
        if not rates:
            out.append(f"{section:<10} {name:<62} {'-':>10} {'-':>11}  {'; '.join(anomalies)}")
            continue
        median = statistics.median(rates)
        if section == "publish" and floor["publish"] is None:
            floor["publish"] = median
        if section == "drain" and name.startswith("raw pika"):
            floor["drain"] = median
        ref = floor[section]
        out.append(f"{section:<10} {name:<62} {median:>10,.0f} {median / ref:>10.2f}x  {'; '.join(anomalies)}")
    for name, seconds, anomalies in latencies:
        figure = f"{statistics.median(seconds):.3f} s" if seconds else "-"
        detail = ", ".join(f"{s:.3f}" for s in seconds)
        out.append(f"{'latency':<10} {name:<62} {figure:>10} {'':>11}  "
                   f"{'runs: ' + detail if detail else ''}{'; ' if detail and anomalies else ''}{'; '.join(anomalies)}")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m workqueue.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20000, help="tasks per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--prefetch", type=int, default=100, help="the tuned prefetch of the drain rows")
    p.add_argument("--peer-tasks", type=int, default=5000,
                   help="tasks per run for Dramatiq and Celery (they publish one confirm at a time)")
    p.add_argument("--no-latency", action="store_true", help="skip the failure-detection rows")
    p.add_argument("--broker", default=None, choices=("auto", "node", "container"))
    args = p.parse_args(argv)
    with stopped_by_signals("bench"), make_broker(args.broker) as broker:
        rows = measure(broker, args.n, args.runs, args.prefetch, args.peer_tasks)
        latencies = () if args.no_latency else latency(broker, args.runs)
        print(format_table(rows, broker, args.n, args.runs, latencies), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

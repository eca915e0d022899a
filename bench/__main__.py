"""``make bench``: workqueue against raw pika, Dramatiq and Celery, on one throwaway broker.

    python -m bench [-n N] [--runs R] [--prefetch P] [--broker node|container]

Every figure is the median of --runs runs. The runs are interleaved (run 1 of every row, then
run 2 of every row...), so a slow minute of the machine does not land on one row. Everyone gets
the same durability: durable queue, persistent messages, publisher confirms where the library
has them, ack after the task; each row says its ack mode. Ratios compare like with like:
confirmed publishers with raw pika's best confirmed publisher, unconfirmed ones with raw pika's
unconfirmed floor, each drain with raw pika at the same prefetch and the same ack mode.
Anomalies (a stalled run, a partial drain, a library that is not installed) are reported in the
table, not dropped. The last rows are failure-detection latencies of workqueue's worker:
SIGKILL of a busy worker to its task starting on another; the broker's port open again to a
worker consuming again. Not part of the installed package (as Dramatiq keeps its benchmarks beside it).
"""

import argparse
import inspect
import os
import socket
import statistics
import sys
import tempfile
import threading
import time

import pika

from bench import peers
from bench.handlers import MARKS_ENV
from workqueue.consumer import Worker
from workqueue.producer import Producer
from workqueue.spec import QueueSpec
from workqueue.testing import make_broker, wait_until
from workqueue.testing.processes import WorkerProcess, stopped_by_signals


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


#: The producer's own confirm window: the bench measures what a user gets by default.
DEFAULT_WINDOW = inspect.signature(Producer).parameters["window"].default


def workqueue_publish(params, queue, n):
    with Producer(params, QueueSpec(queue)) as producer:
        start = time.perf_counter()
        producer.publish_many(b"task %d" % i for i in range(n))
        return time.perf_counter() - start


def pika_drain(params, queue, n, prefetch, timeout, ack_every=1):
    """Raw pika draining ``n`` tasks: each acked alone (``ack_every`` 1), or several at once
    with basic.ack multiple every ``ack_every`` tasks and at the last, as workqueue's worker
    does when more tasks are already delivered."""
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=prefetch)
    count = [0]

    def on_message(ch, method, _props, _body):
        count[0] += 1
        if count[0] % ack_every == 0 or count[0] >= n:
            ch.basic_ack(method.delivery_tag, multiple=ack_every > 1)
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


def pika_drain_multiple(params, queue, n, prefetch, timeout):
    """Raw pika acking every prefetch/2 tasks with one multiple ack."""
    return pika_drain(params, queue, n, prefetch, timeout, ack_every=max(1, prefetch // 2))


def workqueue_drain(params, queue, n, prefetch, timeout):
    """The clock starts when the worker is consuming (its consume-ok), as raw pika's starts after
    its basic_consume returns (BlockingConnection waits for the consume-ok): the connection's
    set-up is in neither (until 2026-12-06 it was in this row's time alone: 20-30 ms of a
    0.4 s run at prefetch 100)."""
    count = [0]
    done = threading.Event()
    consuming: list[float] = []

    def handler(_delivery):
        count[0] += 1
        if count[0] >= n:
            done.set()

    worker = Worker(params, QueueSpec(queue), handler, prefetch=prefetch,
                    on_consuming=lambda: consuming.append(time.perf_counter()))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    done.wait(timeout)
    end = time.perf_counter()
    elapsed = end - consuming[0] if consuming else float(timeout)
    worker.stop()
    thread.join(30)
    return elapsed, count[0]


class Row:
    """One line of the table: its rates over the runs, its anomalies, and what it compares to."""

    def __init__(self, section, name, ack="", ref=None):
        self.section, self.name, self.ack, self.ref = section, name, ack, ref
        self.rates, self.anomalies = [], []


def measure(broker, n, runs, prefetch, peer_tasks=5000):
    """Every row, its runs interleaved. Returns the rows in table order."""
    params = broker.params()
    few = max(n // 10, 100)
    floor = Row("publish", "raw pika, SelectConnection, unconfirmed (floor)")
    best = Row("publish", "raw pika, SelectConnection, all in flight, to the last confirm")
    rows = [floor,
            Row("publish", "raw pika, BlockingConnection, unconfirmed", ref=floor),
            Row("publish", f"raw pika, BlockingConnection, wait for each confirm ({few:,} tasks: N/10)", ref=best),
            best,
            Row("publish", f"workqueue publish_many, pipelined confirms (default window {DEFAULT_WINDOW:,})",
                ref=best)]
    publishers = [lambda q: pika_select_publish(params, q, n), lambda q: pika_blocking_publish(params, q, n, False),
                  lambda q: pika_blocking_publish(params, q, few, True) * n / few,
                  lambda q: pika_select_confirmed(params, q, n), lambda q: workqueue_publish(params, q, n)]
    drains = []          # (row, function)
    raw_each = {}        # prefetch -> raw pika acking each task
    for pf in dict.fromkeys((1, prefetch)):
        one = raw_each[pf] = Row("drain", f"raw pika, prefetch {pf}", ack="each")
        drains.append((one, pika_drain))
        same = one
        if pf > 1:
            same = Row("drain", f"raw pika, prefetch {pf}", ack="multiple")
            drains.append((same, pika_drain_multiple))
        drains.append((Row("drain", f"workqueue Worker, prefetch {pf}", ack=same.ack, ref=same), workqueue_drain))
    peer_n = min(n, peer_tasks)
    peer_rows = {}       # (library, prefetch) -> (publish row, drain row)
    for library in ("dramatiq", "celery"):
        label = "Dramatiq send, confirm_delivery" if library == "dramatiq" else "Celery apply_async, confirm_publish"
        publish = Row("publish", f"{label} ({peer_n:,} tasks)", ref=best)
        for pf in raw_each:
            worker = "Dramatiq worker, 1 thread" if library == "dramatiq" else "Celery solo worker, acks_late"
            peer_rows[library, pf] = (publish, Row("drain", f"{worker}, prefetch {pf} ({peer_n:,} tasks)",
                                                   ack="each", ref=raw_each[pf]))

    for r in range(runs):
        for row, fn in zip(rows, publishers):
            q = f"bench-{r}"
            _fresh_queue(params, q)
            row.rates.append(n / fn(q))
        for row, fn in drains:
            q = f"drain-{r}"
            _fresh_queue(params, q)
            workqueue_publish(params, q, n)
            pf = int(row.name.rsplit(" ", 1)[1])       # "..., prefetch N"
            elapsed, got = fn(params, q, n, pf, timeout=120)
            if got < n:
                row.anomalies.append(f"run {r + 1}: drained {got}/{n}")
            row.rates.append(got / elapsed)
        for (library, pf), (publish, drain) in peer_rows.items():
            if publish.anomalies and not publish.rates:
                continue                                   # not installed: said once
            q = f"{library}-{pf}-{r}"
            _fresh_queue(params, q) if library == "celery" else _delete_queue(params, q)
            with tempfile.TemporaryDirectory() as marks:
                try:
                    if library == "dramatiq":
                        pub, spent, got, note = peers.dramatiq_publish_and_drain(
                            broker.url(), q, peer_n, pf, peers.STALL, marks)
                    else:
                        pub, spent, got, note = peers.celery_publish_and_drain(
                            params, q, peer_n, pf, peers.STALL, marks)
                except peers.Unavailable as exc:
                    publish.anomalies = [str(exc)]
                    continue
            _delete_queue(params, q)
            publish.rates.append(peer_n / pub)
            drain.rates.append(max(got - 1, 0) / spent if spent > 0 else 0.0)
            if note:
                drain.anomalies.append(f"run {r + 1}: {note}, drained {got}/{peer_n}")

    publish_peers = list(dict.fromkeys(p for p, _ in peer_rows.values()))
    table = rows[:] + publish_peers
    for pf in raw_each:
        table += [row for row, _ in drains if row.name.endswith(f"prefetch {pf}")]
        table += [d for (_, p), (_, d) in peer_rows.items() if p == pf and (d.rates or d.anomalies)]
    return table


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
            options = ("--queue", q, "--queue-type", "classic", "--handler", "bench.handlers:mark_start")
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
    worker = WorkerProcess("w", broker.url(), "--queue", "latency-restart", "--queue-type", "classic",
                           on_line=lambda line: consuming.append(time.monotonic())
                           if "Waiting for messages" in line else None)
    try:
        worker.wait_consuming(60)
        for r in range(max(1, runs - 1)):
            before = len(consuming)
            broker.stop()
            port = PortWatch(params.host, params.port)
            try:
                broker.start()
                up = port.first_open(60)
                wait_until(lambda: len(consuming) > before, 60, "the worker to consume again")
                back = consuming[before] - up
                back_times.append(back)
                if back < 0:
                    anomalies.append(f"run {r + 1}: the worker consumed {-back:.3f} s before the port was seen "
                                     f"open (the port is polled every {PortWatch.EVERY * 1000:.0f} ms)")
            except TimeoutError as exc:
                anomalies.append(f"run {r + 1}: {exc}")
            finally:
                port.close()
    finally:
        worker.close()
    out.append(("broker's port open again to a worker consuming again", back_times, anomalies))
    return out


class PortWatch:
    """From its creation (the broker stopped), the first moment (time.monotonic()) the broker's
    AMQP port accepts a TCP connection again, polled every EVERY seconds in a thread: when the
    broker answers again, observed independently of the broker's own start, which returns only
    once its readiness probe has logged in (a worker's reconnect may come first)."""

    EVERY = 0.01

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.opened: float | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="port-watch", daemon=True)
        self.thread.start()

    def _poll(self):
        while not self.stopping.is_set():
            try:
                socket.create_connection((self.host, self.port), timeout=self.EVERY).close()
            except OSError:
                self.stopping.wait(self.EVERY)
                continue
            self.opened = time.monotonic()
            return

    def first_open(self, timeout):
        self.thread.join(timeout)
        if self.opened is None:
            raise TimeoutError(f"the broker's port {self.port} did not open within {timeout} s")
        return self.opened

    def close(self):
        self.stopping.set()
        self.thread.join(1)


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
    out = [f"RabbitMQ {broker.version} ({broker.kind}), N={n}, median of {runs} interleaved runs; everyone: "
           f"durable queue, persistent messages, confirms where the library has them, ack after the task",
           f"{'what':<10} {'how':<72} {'acks':<9} {'tasks/s':>10} {'ratio':>7}  notes"]
    for row in rows:
        median = statistics.median(row.rates) if row.rates else None
        ref = statistics.median(row.ref.rates) if row.ref is not None and row.ref.rates else None
        figure = f"{median:,.0f}" if median is not None else "-"
        ratio = f"{median / ref:.2f}x" if median is not None and ref else ""
        notes = "; ".join(row.anomalies)
        if ratio:
            versus = f"vs {row.ref.name}{', acks ' + row.ref.ack if row.ref.ack else ''}"
            notes = versus + (f"; {notes}" if notes else "")
        out.append(f"{row.section:<10} {row.name:<72} {row.ack:<9} {figure:>10} {ratio:>7}  {notes}")
    for name, seconds, anomalies in latencies:
        figure = f"{statistics.median(seconds):.3f} s" if seconds else "-"
        detail = ", ".join(f"{s:.3f}" for s in seconds)
        out.append(f"{'latency':<10} {name:<72} {'':<9} {figure:>10} {'':>7}  "
                   f"{'runs: ' + detail if detail else ''}{'; ' if detail and anomalies else ''}{'; '.join(anomalies)}")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
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

"""``make bench``: publish and drain throughput, workqueue against raw pika, on one broker.

Every figure is the median of --runs runs, on a durable queue with persistent messages, and
shown with its ratio to raw pika in the same run. Anomalies (a run that did not drain every
task in time) are reported in the table, not dropped. Dramatiq and Celery columns are not
measured yet (see the closing notes of issue 7).
"""

import argparse
import statistics
import sys
import threading
import time

import pika

from workqueue.consumer import Worker
from workqueue.producer import Producer
from workqueue.queue import QueueSpec
from workqueue.testing import make_broker


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


def measure(broker, n, runs, prefetch):
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
    publish_row("workqueue publish_many, pipelined confirms", lambda q: workqueue_publish(params, q, n))

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
    return rows


def format_table(rows, broker, n, runs):
    out = [f"RabbitMQ {broker.version} ({broker.kind}), N={n}, median of {runs} runs; durable queue, "
           f"persistent messages, acks after the handler",
           f"{'what':<10} {'how':<55} {'tasks/s':>10} {'x raw pika':>11}  notes"]
    floor = {"publish": None, "drain": None}
    for section, name, rates, anomalies in rows:
        median = statistics.median(rates)
        if section == "publish" and floor["publish"] is None:
            floor["publish"] = median
        if section == "drain" and name.startswith("raw pika"):
            floor["drain"] = median
        ref = floor[section]
        out.append(f"{section:<10} {name:<55} {median:>10,.0f} {median / ref:>10.2f}x  {'; '.join(anomalies)}")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m workqueue.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20000, help="tasks per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--prefetch", type=int, default=100, help="the tuned prefetch of the drain rows")
    p.add_argument("--broker", default=None, choices=("auto", "node", "container"))
    args = p.parse_args(argv)
    with make_broker(args.broker) as broker:
        print(format_table(measure(broker, args.n, args.runs, args.prefetch), broker, args.n, args.runs),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a user would pick instead of workqueue, for ``make bench``: Dramatiq and Celery.

Benchmark-only (``pip install -e '.[bench]'``; not part of the installed package): neither is a
dependency of the package. Both
are set up with the same durability as everyone else in the table: durable queue, persistent
messages, publisher confirms (Dramatiq ``confirm_delivery=True``, Celery/kombu
``confirm_publish``), ack after the task (Dramatiq acks after the actor returns; Celery
``task_acks_late``).

Workers mark their first and N-th task in files (``WORKQUEUE_BENCH_MARKS``), so a drain is timed from
the first task to the last, without the framework's start-up; and their progress, every 100th
task and at least once a second, so that a slow drain is seen moving and measured by what it did.
"""

import os
import subprocess
import sys
import time
import urllib.parse

from workqueue.testing.processes import die_with_parent

MARKS_ENV = "WORKQUEUE_BENCH_MARKS"
N_ENV = "WORKQUEUE_BENCH_N"
URL_ENV = "WORKQUEUE_BENCH_CELERY_URL"
#: Seconds a peer's drain may run; a slower one is measured on what it drained by then.
BUDGET = 30.0


class Unavailable(Exception):
    """The library is not installed: the table says so instead of a figure."""


#: Seconds a drain may go without a task done before the bench calls it stalled. Longer than the
#: longest wait kombu's event loop makes on its own (it polls for at most 10 s when no timer is
#: due sooner), which a Celery solo worker at prefetch 1 runs into between tasks (README.md): a
#: worker that waits that long and goes on is slow, not stalled, and is measured as such.
STALL = 15.0
#: A progress mark at least this often (seconds), so that a slow drain is seen moving and timed.
MARK_EVERY = 1.0
_last_mark = [0.0]


def _mark(count):
    """Called by a peer's task with its running count: note the times of the 1st and N-th task,
    and of every 100th, or of the latest once MARK_EVERY seconds have passed since a mark."""
    marks, n = os.environ.get(MARKS_ENV), int(os.environ.get(N_ENV) or 0)
    if not marks:
        return
    now = time.monotonic()
    if count == 1 or count == n or count % 100 == 0 or now - _last_mark[0] >= MARK_EVERY:
        _last_mark[0] = now
        name = "first" if count == 1 else "last" if count == n else "progress"
        with open(os.path.join(marks, name), "w") as f:
            f.write(f"{time.time()} {count}\n")


def read_marks(directory):
    """(first time, time of the N-th or None, count reached, time of the latest mark)."""
    def read(name):
        try:
            with open(os.path.join(directory, name)) as f:
                t, count = f.read().split()
                return float(t), int(count)
        except (OSError, ValueError):
            return None, 0
    first, _ = read("first")
    last, n = read("last")
    progress_t, progress = read("progress")
    latest = last or progress_t or first
    return first, last, max(n, progress, 1 if first else 0), latest


# -- Dramatiq ----------------------------------------------------------------------------------
def _dramatiq():
    try:
        import dramatiq
        from dramatiq.brokers.rabbitmq import RabbitmqBroker
    except ImportError:
        raise Unavailable("dramatiq not installed (pip install -e '.[bench]')") from None
    return dramatiq, RabbitmqBroker


def dramatiq_publish_and_drain(url, queue, n, prefetch, timeout, marks):
    """Send n tasks (confirmed), then drain them with one worker thread at ``prefetch``.

    Returns (publish seconds, drain seconds, drained, note on an incomplete drain)."""
    dramatiq, RabbitmqBroker = _dramatiq()
    broker = RabbitmqBroker(url=url, confirm_delivery=True)
    counter = [0]

    @dramatiq.actor(broker=broker, queue_name=queue, actor_name=f"noop_{queue.replace('-', '_')}",
                    max_retries=0)
    def noop(i):
        counter[0] += 1
        _mark(counter[0])

    start = time.perf_counter()
    for i in range(n):
        noop.send(i)
    published = time.perf_counter() - start

    os.environ[MARKS_ENV], os.environ[N_ENV] = marks, str(n)
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.queue_prefetch = prefetch
    worker.start()
    try:
        first, latest, got, note = _wait_marks(marks, n, timeout)
    finally:
        worker.stop()
        broker.close()
        os.environ.pop(MARKS_ENV, None)
    return published, _span(first, latest), got, note


# -- Celery --------------------------------------------------------------------------------------
#: The Celery settings of the bench's workers and of bench.celery_solo_wait's: confirmed
#: persistent publishes, late acks, no results kept, the worker's logging left alone.
CELERY_CONF = dict(broker_transport_options={"confirm_publish": True}, task_acks_late=True,
                   task_ignore_result=True, worker_hijack_root_logger=False,
                   broker_connection_retry_on_startup=True, task_default_delivery_mode="persistent")


def celery_app():
    """The Celery app, configured from the environment (the bench and its worker process)."""
    try:
        from celery import Celery
    except ImportError:
        raise Unavailable("celery not installed (pip install -e '.[bench]')") from None
    app = Celery("wqbench", broker=os.environ[URL_ENV])
    app.conf.update(CELERY_CONF)
    counter = [0]

    @app.task(name="wqbench.noop")
    def noop(i):
        counter[0] += 1
        _mark(counter[0])
    return app, noop


def celery_url(params):
    user = urllib.parse.quote(params.credentials.username, safe="")
    password = urllib.parse.quote(params.credentials.password, safe="")
    return f"pyamqp://{user}:{password}@{params.host}:{params.port}/{urllib.parse.quote(params.virtual_host, safe='')}"


def celery_publish_and_drain(params, queue, n, prefetch, timeout, marks):
    """apply_async n tasks (confirmed), then drain them with a solo worker (acks_late).

    Returns (publish seconds, drain seconds, drained, note on an incomplete drain)."""
    os.environ[URL_ENV] = celery_url(params)
    app, noop = celery_app()
    start = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for i in range(n):
            noop.apply_async((i,), queue=queue, producer=producer)
    published = time.perf_counter() - start
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.peers:celery_worker_app", "worker",
         "--pool=solo", "--concurrency=1", f"--prefetch-multiplier={prefetch}", "-Q", queue,
         "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "ERROR"],
        env={**os.environ, MARKS_ENV: marks, N_ENV: str(n)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent)
    try:
        first, latest, got, note = _wait_marks(marks, n, timeout)
    finally:
        stop_worker(worker)
        app.close()
    return published, _span(first, latest), got, note


def stop_worker(worker):
    """SIGTERM a Celery worker process (its warm shutdown), SIGKILL it after 30 s; wait for it."""
    worker.terminate()
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(30)


def _span(first, latest):
    return (latest - first) if first is not None and latest is not None else 0.0


def __getattr__(name):
    # ``celery -A bench.peers:celery_worker_app``: built on first access, in the worker.
    if name == "celery_worker_app":
        return celery_app()[0]
    raise AttributeError(name)


def _wait_marks(marks, n, stall, budget=BUDGET):
    """Wait for the N-th task's mark; give up when no task is done for ``stall`` seconds or the
    drain has run ``budget`` seconds. Returns (first time, latest mark time, count, note)."""
    started = time.monotonic()
    deadline = started + stall
    seen = 0
    while True:
        first, last, got, latest = read_marks(marks)
        if last is not None:
            return first, last, n, None
        if got > seen:
            seen, deadline = got, time.monotonic() + stall        # still moving
        if time.monotonic() > deadline:
            return first, latest, got, f"stalled: no task done for {stall:g} s"
        if first is not None and time.monotonic() - started > budget:
            return first, latest, got, f"partial: time budget of {budget:g} s"
        time.sleep(0.05)                                           # polling the marks, with a deadline

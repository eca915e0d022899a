"""Tasks: sending them with the workqueue Producer, and what the workers did with them."""

import dataclasses
import secrets
import subprocess
import sys
import threading

import pika
import pytest
from pytest_bdd import given, parsers, then, when

from steps import DEADLINE, HEAVY_TASK, LIGHT_TASK, quoted
from steps.broker import memory_alarm
from steps.queues import password_of, queue_counts, queue_holds, queue_options, run_cli
from workqueue import Producer, QueueSpec
from workqueue.testing import free_port, wait_until
from workqueue.testing.processes import child_env, note_crashes


@pytest.fixture
def send(broker, vhost, queue_spec, declared, worker_under_test, framework_queue):
    """send(bodies, queue=<the scenario's>, persistent=True): publish and wait for the confirms
    (publish_many raises when one is missing). A worker under test with a message format of its
    own (a task framework) is sent its tasks through its adapter command."""
    adapter = worker_under_test if worker_under_test is not None and worker_under_test.send else None

    def send(bodies, queue=None, persistent=True):
        bodies = list(bodies)
        if adapter is not None:
            from workqueue.testing.contract import send_with_adapter
            declare_dead_letter_queue(broker, vhost, queue or queue_spec)
            send_with_adapter(adapter, broker.url(vhost), queue_options(queue or queue_spec), bodies, DEADLINE)
            declared.mark()
            return bodies
        with Producer(broker.params(vhost), queue or queue_spec, persistent=persistent) as producer:
            declared.mark()
            producer.publish_many(bodies)
        return bodies
    return send


def declare_dead_letter_queue(broker, vhost, spec):
    """The dead-letter queue of ``spec``, declared as the project's producer declares it: a
    framework that declares its task queue itself (with the contract's dead-letter arguments)
    leaves the queue its tasks are dead-lettered to to whoever runs it."""
    dead = [d for d in spec.declarations() if d[0] != spec.name]
    if not dead:
        return
    conn = pika.BlockingConnection(broker.params(vhost))
    try:
        channel = conn.channel()
        for name, durable, arguments in dead:
            channel.queue_declare(name, durable=durable, arguments=arguments)
    finally:
        conn.close()


@given(parsers.re(r'(?P<count>\d+) (?P<kind>persistent|transient) tasks are waiting in the '
                  r'(?P<durability>durable|transient) queue "(?P<name>[^"]+)"'),
       target_fixture="sent_tasks")
def _(broker, vhost, send, count, kind, durability, name):
    queue = QueueSpec(name, durable=durability == "durable")
    sent = send([f"task {n}" for n in range(1, int(count) + 1)], queue, persistent=kind == "persistent")
    counted_waiting(broker, vhost, name, int(count))
    return sent


@given(parsers.re(r'(?P<count>\d+) persistent tasks are waiting in the task queue'),
       target_fixture="sent_tasks")
def _(send, count):
    """No wait for the statistics here: "the broker crashes at once" after it must strike within
    moments of the queue's declaration (the defect quorum_early_crash shows only then: a wait of
    a second let the Ra directory write the queue's registration, and the scenario passed)."""
    return send([f"task {n}" for n in range(1, int(count) + 1)])


def counted_waiting(broker, vhost, name, count):
    """The tasks are waiting as the broker's statistics see them too: the management API counts
    them (it trails the queue by up to a second). A When that changes them (a purge, a restart)
    then starts from a count that shows them; without this wait a purge that did nothing passed,
    the API still showing the new queue's first sample, 0 ready (mutant purge-does-nothing,
    survived in CI's run of 2026-12-07)."""
    wait_until(lambda: (queue_counts(broker, vhost, name) or (None,))[0] == count, DEADLINE,
               f"the management API to count {count} task(s) ready in {name!r}")


@when(parsers.re(r'the tasks (?P<tasks>".+) are sent'), target_fixture="sent_tasks")
def _(send, tasks):
    return send(quoted(tasks))


@when(parsers.re(r'the task "(?P<task>[^"]+)" is sent'), target_fixture="sent_tasks")
def _(send, task):
    return send([task])


@when(parsers.re(r'(?P<count>\d+) (?:more )?tasks are sent'), target_fixture="sent_tasks")
def _(send, count):
    return send([f"task {n}" for n in range(1, int(count) + 1)])


@when(parsers.re(r'(?P<count>\d+) short tasks are sent'), target_fixture="sent_tasks")
def _(send, count):
    return send([f"task {n}." for n in range(1, int(count) + 1)])


def new_tasks(amqp_url, queue_spec, declared, tasks):
    """The tutorial's producer, one process per task, as its page runs it, declaring the
    scenario's queue; the first that fails raises."""
    for task in tasks:
        run = run_cli("new_task", *queue_options(queue_spec), task, url=amqp_url)
        if run.returncode != 0:
            raise RuntimeError(f"new_task exited {run.returncode}: {run.stderr.strip()}")
        declared.mark()
    return tasks


@given(parsers.re(r'the tasks (?P<tasks>".+) are sent with new_task$'), target_fixture="sent_tasks")
def _(amqp_url, queue_spec, declared, tasks):
    return new_tasks(amqp_url, queue_spec, declared, quoted(tasks))


@when(parsers.re(r'the tasks (?P<tasks>".+) are sent with new_task$'), target_fixture="sent_tasks")
def _(amqp_url, queue_spec, declared, tasks):
    return new_tasks(amqp_url, queue_spec, declared, quoted(tasks))


@when(parsers.re(r'the task "(?P<task>[^"]+)" is sent with new_task$'), target_fixture="producer_run")
def _(amqp_url, queue_spec, task):
    """One more task, whatever new_task answers (a Then says what it did)."""
    return run_cli("new_task", *queue_options(queue_spec), task, url=amqp_url)


@when("a heavy task is sent, then 5 light tasks", target_fixture="sent_tasks")
def _(send):
    return send([HEAVY_TASK] + [LIGHT_TASK.format(n=n) for n in range(1, 6)])


@dataclasses.dataclass
class Sending:
    """What a producer did while the broker went away under it (``most_unconfirmed``: the most
    tasks it had taken from its source and not yet had confirmed, at any moment; ``window``:
    the window it was given)."""
    tasks: list
    confirmed: list
    reconnections: int
    error: Exception | None
    most_unconfirmed: int = 0
    window: int = 0


def send_through(count, producer, fault):
    """Publish ``count`` tasks with ``producer`` (in a thread); ``fault(struck)`` strikes once
    half of them are handed to the producer, and the second half is handed over only once it
    sets ``struck`` (a producer faster than the fault would otherwise be done before it: 2,000
    tasks are confirmed in under a second). What the producer did, once it is done (or two
    deadlines later)."""
    tasks = [f"task {n}" for n in range(1, count + 1)]
    confirmed, errors, halfway, struck = [], [], threading.Event(), threading.Event()
    most = [0]

    def bodies():
        for n, body in enumerate(tasks):
            if n == count // 2:
                halfway.set()
                struck.wait(DEADLINE)
            most[0] = max(most[0], n + 1 - len(confirmed))      # taken, this one included
            yield body

    def produce():
        try:
            with producer:
                producer.publish_many(bodies(), on_confirm=lambda body: confirmed.append(body.decode()))
        except Exception as exc:  # reported by the Then steps
            errors.append(exc)
        finally:
            halfway.set()

    thread = threading.Thread(target=produce, name="faulted-producer", daemon=True)
    thread.start()
    halfway.wait(DEADLINE)
    fault(struck)
    thread.join(DEADLINE * 2)
    if thread.is_alive():
        errors.append(TimeoutError(f"the producer did not finish within {DEADLINE * 2} s of the fault"))
    return Sending(tasks, list(confirmed), producer.reconnections, errors[0] if errors else None, most[0],
                   producer.window)


@when(parsers.parse("{count:d} persistent tasks are sent and the broker crashes as soon as the producer returns"),
      target_fixture="sent_tasks")
def _(broker, vhost, queue_spec, nemesis, count):
    """publish_many returns once every task is confirmed; the crash follows at once, with no
    wait between (the queue itself is a few seconds old: the Given). A producer that returned
    before its confirms leaves tasks the broker had not written yet. Its window is more than
    every task: only the confirms hold publish_many back. With a window of 1000 (the default then), a
    producer that did not wait for them still returned with at most the last 1000 in flight,
    which a broker on a fast machine had written before the crash; with a window of exactly
    every task, the producer learns that nothing is left only when it asks for more, on the
    first confirm, by when a fast broker had written them all (the mutant no-confirms-crash
    survived in CI twice, 2026-12-06, the second time with that window). One more, and every
    task is published, the batch ends and the crash strikes before any confirm."""
    tasks = [f"task {n}" for n in range(1, count + 1)]
    producer = Producer(broker.params(vhost), queue_spec, window=count + 1)
    with producer:
        producer.publish_many(tasks)
        nemesis(broker).crash(broker)
    nemesis(broker).recover(broker)
    return tasks


@when(parsers.parse("{count:d} tasks are sent while the broker crashes and recovers"),
      target_fixture="sending")
def _(broker, vhost, queue_spec, declared, nemesis, count):
    # A small window keeps tasks in flight (sent, not yet confirmed) when the broker dies. The
    # producer keeps trying for as long as the broker may take to boot again, and a deadline
    # more: the outage's length is the machine's, not the guarantee (a 4.3.6 container took
    # over 60 s to come back in CI on a loaded machine, 2026-12-06, and the producer gave up).
    producer = Producer(broker.params(vhost), queue_spec, window=100,
                        reconnect_timeout=broker.startup_timeout + DEADLINE)

    def crash(struck):
        declared.wait_settled()
        nemesis(broker).crash(broker)
        struck.set()                 # the producer goes on sending while the broker is down
        broker.start()
    return send_through(count, producer, crash)


@when(parsers.parse("{count:d} tasks are sent while the broker is frozen for {seconds:d} seconds, "
                    "to a producer that waits {timeout:d} seconds for a confirm"),
      target_fixture="sending")
def _(broker, vhost, queue_spec, nemesis, count, seconds, timeout):
    """The broker stops answering and keeps its sockets open (its VM or container paused), as
    a node does in a long GC pause or behind a silent network fault. Without heartbeats, only
    the producer's confirm timeout can tell. The freeze lasts ``seconds`` (the fault's length,
    as a nemesis schedules it: not a synchronisation)."""
    producer = Producer(broker.params(vhost, heartbeat=0), queue_spec, window=100,
                        confirm_timeout=timeout, reconnect_timeout=DEADLINE)

    def freeze(struck):
        nemesis(broker).pause(broker)
        struck.set()
        try:
            threading.Event().wait(seconds)
        finally:
            broker.resume()
    return send_through(count, producer, freeze)


@then("every task is confirmed, after a reconnection")
def _(sending):
    assert sending.error is None, sending.error
    assert sending.reconnections >= 1, "the producer never lost its connection"
    missing = set(sending.tasks) - set(sending.confirmed)
    assert not missing, f"{len(missing)} task(s) never confirmed, e.g. {sorted(missing)[:5]}"


@then(parsers.parse("the producer never held more than its window of {window:d} tasks unconfirmed"))
def _(sending, window):
    """Counted at the producer's source: each task it takes, against the confirms it has had."""
    assert sending.window == window, f"the producer was given a window of {sending.window}"
    assert 0 < sending.most_unconfirmed <= window, (
        f"the producer held {sending.most_unconfirmed} tasks unconfirmed at once")


@when(parsers.parse("{count:d} tasks are sent by a producer that waits {timeout:d} seconds for a confirm, "
                    "and the alarm clears after it has been blocked for {seconds:d} seconds"),
      target_fixture="sending")
def _(broker, vhost, queue_spec, alarm, count, timeout, seconds):
    """The broker blocks the producer's connection as it publishes (the management API shows it
    ``blocked``); the block lasts ``seconds`` from then (the fault's length, not a
    synchronisation), longer than the producer's confirm timeout."""
    producer = Producer(broker.params(vhost), queue_spec, confirm_timeout=timeout, reconnect_timeout=DEADLINE,
                        blocked_timeout=DEADLINE * 2)
    tasks = [f"task {n}" for n in range(1, count + 1)]
    confirmed, errors = [], []

    def produce():
        try:
            with producer:
                producer.publish_many(tasks, on_confirm=lambda body: confirmed.append(body.decode()))
        except Exception as exc:  # reported by the Then steps
            errors.append(exc)

    thread = threading.Thread(target=produce, name="blocked-producer", daemon=True)
    thread.start()
    wait_until(lambda: blocked_connections(broker, vhost) or errors, DEADLINE,
               "the broker to block the producer's connection")
    threading.Event().wait(seconds)
    alarm.clear()
    thread.join(DEADLINE)
    if thread.is_alive():
        errors.append(TimeoutError(f"the producer did not finish within {DEADLINE} s of the alarm's end"))
    return Sending(tasks, list(confirmed), producer.reconnections, errors[0] if errors else None,
                   window=producer.window)


def blocked_connections(broker, vhost):
    """The names of the connections on ``vhost`` that the management API shows blocked."""
    return [c["name"] for c in broker.management.request("GET", "/api/connections")
            if c.get("vhost") == vhost and c.get("state") == "blocked"]


@then("every task is confirmed, with no reconnection")
def _(sending):
    assert sending.error is None, sending.error
    assert sending.reconnections == 0, f"the producer reconnected {sending.reconnections} time(s)"
    assert sorted(sending.confirmed) == sorted(sending.tasks), "not every task was confirmed, once"


@then("the worker does every task at least once")
def _(survivor, sending):
    expected = set(sending.tasks)
    # Polled (not checked at each of thousands of lines): finished() reads every line.
    try:
        wait_until(lambda: expected <= set(survivor.finished()) or survivor.process.poll() is not None,
                   DEADLINE, f"all {len(expected)} tasks finished", interval=0.5)
    except TimeoutError as exc:
        missing = sorted(expected - set(survivor.finished()))
        raise AssertionError(f"{exc}: {len(missing)} not done, e.g. {missing[:5]}; the worker started "
                             f"consuming {survivor.consuming_count()} time(s); last lines "
                             f"{list(survivor.lines)[-3:]}, errors {survivor.errors[-3:]}") from None
    assert survivor.process.poll() is None, survivor.errors[-5:]
    assert set(survivor.received()) == expected, sorted(expected - set(survivor.finished()))[:5]


def wait_all_done(workers, tasks):
    """Wait until the workers, together, have done ``tasks``; return {name: received}."""
    def done():
        finished = sum(w.done_count() for w in workers)
        got = [t for w in workers for t in w.received()]
        return all(t in got for t in tasks) and finished >= len(tasks)
    wait_until(done, DEADLINE, f"the workers to do {tasks!r}")
    return {w.name: w.received() for w in workers}


@then(parsers.re(r'"(?P<name>[^"]+)" does (?P<tasks>"[^"]+"(?:, "[^"]+")*(?: and "[^"]+")?)$'))
def _(workers, sent_tasks, name, tasks):
    """The tasks it was given, each once, in whatever order it started them: the turns are the
    broker's; a worker that runs the tasks it holds at once (FastStream's each delivery its own
    asyncio task) starts them in an order of its own (seen: task 3, task 5, task 1)."""
    received = wait_all_done(workers, sent_tasks)
    assert sorted(received[name]) == sorted(quoted(tasks)), received


@then(parsers.re(r'(?P<names>"[^"]+"(?:, "[^"]+")* and "[^"]+") each do (?P<count>\d+) of them'))
def _(workers, sent_tasks, names, count):
    received = wait_all_done(workers, sent_tasks)
    share = {name: [t for t in received[name] if t in sent_tasks] for name in quoted(names)}
    assert all(len(tasks) == int(count) for tasks in share.values()), share


@then(parsers.re(r'one worker does (?P<first>.+), the other (?P<second>"[^"]+" and "[^"]+")$'))
def _(workers, sent_tasks, first, second):
    received = wait_all_done(workers, sent_tasks)
    assert sorted(received.values()) == sorted([quoted(first), quoted(second)]), received


def heavy_worker(workers):
    return wait_until(lambda: next((w for w in workers if HEAVY_TASK in w.received()), None),
                      DEADLINE, "a worker to take the heavy task")


@then("the worker that took the heavy task does no light task")
def _(workers, sent_tasks):
    lights = sent_tasks[1:]
    wait_until(lambda: sum(t in w.received() for w in workers for t in lights) == len(lights)
               and all(w.done_count() >= len(w.received()) - (HEAVY_TASK in w.received()) for w in workers),
               DEADLINE, "every light task to be done")
    busy = heavy_worker(workers)
    lights_taken = [t for t in busy.received() if t != HEAVY_TASK]
    assert busy.received() == [HEAVY_TASK], (
        f"{busy.name} took the heavy task and {len(lights_taken)} light task(s) too: {busy.received()}")


@then("the other worker does all 5 light tasks")
def _(workers, sent_tasks):
    busy = heavy_worker(workers)
    other = next(w for w in workers if w is not busy)
    assert other.received() == sent_tasks[1:], {w.name: w.received() for w in workers}


@then("the worker that took the heavy task also does light tasks, after the heavy one")
def _(workers, sent_tasks):
    received = wait_all_done(workers, sent_tasks)
    busy = heavy_worker(workers)
    mine = received[busy.name]
    assert mine[0] == HEAVY_TASK and len(mine) > 1, received
    assert all(t in sent_tasks[1:] for t in mine[1:]), received


def _bad_input(broker, amqp_url, input):
    """(arguments, url, stdin bytes, passwords that must not be printed) for one bad input."""
    real = broker.password
    wrong = "wrong-" + secrets.token_hex(6)
    host_port = f"127.0.0.1:{broker.port}"
    cases = {
        "an empty task": ([""], amqp_url, None),
        "a binary, non-UTF-8 task": ([b"\xff\xfe binary task"], amqp_url, None),
        "a 16 MiB task": (["--stdin"], amqp_url, b"x" * (16 * 1024 * 1024)),
        "a task of 10,000 dots": (["." * 10_000], amqp_url, None),
        "a malformed broker URL": (["First message."],
                                   f"amqp://{broker.username}:{real}@{host_port.split(':')[0]}:notaport/", None),
        "a port where nothing listens": (["First message."],
                                         amqp_url.replace(host_port, f"127.0.0.1:{free_port()}"), None),
        "a wrong password": (["First message."], amqp_url.replace(f":{real}@", f":{wrong}@"), None),
    }
    args, url, stdin = cases[input]
    return args, url, stdin, [real, wrong]


@when(parsers.parse("the producer is given {input}"), target_fixture="producer_run")
def _(broker, amqp_url, input):
    args, url, stdin, passwords = _bad_input(broker, amqp_url, input)
    run = subprocess.run([sys.executable, "-m", "workqueue.new_task", *args],
                         env=child_env({"WORKQUEUE_URL": url}), input=stdin,
                         stdin=None if stdin is not None else subprocess.DEVNULL,
                         capture_output=True, timeout=DEADLINE)
    run.stdout, run.stderr = run.stdout.decode(errors="replace"), run.stderr.decode(errors="replace")
    run.passwords = passwords
    note_crashes("workqueue.new_task", run.stderr)
    return run


@then("no line it printed contains a password")
def _(producer_run):
    for password in producer_run.passwords:
        assert password not in producer_run.stdout + producer_run.stderr


class BackgroundCli:
    """``python -m workqueue.<module>`` left running while the scenario goes on; its stdout and
    stderr read into lists as they come. ``passwords``: those it must never print."""

    def __init__(self, module, *args, url):
        self.module = module
        self.process = subprocess.Popen([sys.executable, "-m", f"workqueue.{module}", *args],
                                        env=child_env({"WORKQUEUE_URL": url}), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.passwords = {password_of(u) for u in url.split()} - {""}
        self.readers = [threading.Thread(target=self._read, args=(stream, sink), daemon=True)
                        for stream, sink in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, sink):
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait(self, timeout):
        code = self.process.wait(timeout)
        for reader in self.readers:
            reader.join(timeout)
        note_crashes(f"workqueue.{self.module}", self.stderr)
        return code

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.wait(DEADLINE)


@pytest.fixture
def background_runs():
    runs = []
    yield runs
    for run in runs:
        run.close()


@when(parsers.re(r'the task "(?P<task>[^"]+)" is sent with new_task, and worker "(?P<name>[^"]+)" '
                 r'takes the queue$'), target_fixture="background_run")
def _(amqp_url, queue_spec, workers, background_runs, task, name):
    run = BackgroundCli("new_task", *queue_options(queue_spec), task, url=amqp_url)
    background_runs.append(run)
    workers.start(name).wait_consuming(DEADLINE)
    return run


BLOCKED_NOTICE_SECONDS = 20


def blocked_lines(lines, why):
    return [line for line in lines if "blocked publishing" in line and why in line]


@then(parsers.re(r'"(?P<name>[^"]+)" does the (?P<count>\d+) waiting tasks while new_task waits, '
                 r'saying it is blocked by "(?P<why>[^"]+)"$'))
def _(workers, waiting_tasks, background_run, name, count, why):
    worker = workers[name]
    assert len(waiting_tasks) == int(count)
    worker.wait_done(int(count), DEADLINE)
    assert sorted(worker.finished()) == sorted(waiting_tasks), worker.finished()
    # The broker blocks a publishing connection at its first publish (within a second, measured);
    # 20 s is ample, and keeps the mutant that does not listen for it short.
    wait_until(lambda: blocked_lines(background_run.stderr, why) or background_run.process.poll() is not None,
               BLOCKED_NOTICE_SECONDS, f"new_task to say it is blocked by {why!r}")
    assert blocked_lines(background_run.stderr, why), background_run.stderr
    assert background_run.process.poll() is None, (background_run.process.returncode, background_run.stderr)
    assert background_run.stdout == [], "new_task said it sent the task during the alarm"


@then(parsers.re(r'"(?P<name>[^"]+)" does the (?P<count>\d+) waiting tasks, with the alarm still up$'))
def _(broker, vhost, queue_spec, workers, waiting_tasks, alarm, name, count):
    """Each of them done once, and the queue empty, while the broker still reports its memory
    alarm: a worker that publishes on the connection it consumes on (a framework's own
    messages) is blocked with the publishers and does nothing until the alarm clears."""
    worker = workers[name]
    assert len(waiting_tasks) == int(count)
    try:
        worker.wait_done(int(count), DEADLINE)
    except TimeoutError:
        raise AssertionError(f"{name} finished {len(worker.finished())} of the {count} waiting task(s) in "
                             f"{DEADLINE} s of the alarm; {queue_spec.name!r} holds "
                             f"{queue_holds(broker, vhost, queue_spec.name)}") from None
    assert sorted(worker.finished()) == sorted(waiting_tasks), worker.finished()
    assert alarm.raised and memory_alarm(broker) is True, "the memory alarm cleared before the tasks were done"


@then(parsers.re(r'new_task exits with code 0 and "(?P<name>[^"]+)" does "(?P<task>[^"]+)"$'))
def _(workers, background_run, name, task):
    assert background_run.wait(DEADLINE) == 0, background_run.stderr
    assert background_run.stdout == [f" [x] Sent {task!r}"], background_run.stdout
    worker = workers[name]
    worker.wait_for(lambda _l: task in worker.finished(), DEADLINE, f"{task!r} done")
    assert worker.finished().count(task) == 1, worker.finished()


@when(parsers.re(r'the task "(?P<task>[^"]+)" is sent with new_task, giving up after (?P<seconds>\d+) '
                 r'seconds blocked$'), target_fixture="producer_run")
def _(amqp_url, queue_spec, task, seconds):
    return run_cli("new_task", *queue_options(queue_spec), "--blocked-timeout", seconds, task, url=amqp_url)


@then(parsers.re(r'new_task says it is blocked by "(?P<why>[^"]+)", then fails with exit code (?P<code>\d+) '
                 r'and one line saying "(?P<says>[^"]+)"$'))
def _(producer_run, why, code, says):
    """Two lines on stderr exactly: the warning as the broker blocked it, the error at the end."""
    lines = producer_run.stderr.strip().splitlines()
    assert producer_run.returncode == int(code), (producer_run.returncode, producer_run.stderr)
    assert len(lines) == 2 and blocked_lines(lines[:1], why), lines
    assert says in lines[1], f"{says!r} is not in the line: {lines[1]}"
    assert "Traceback" not in producer_run.stderr and producer_run.stdout == "", producer_run.stdout
    assert producer_run.passwords and not any(p in producer_run.stderr for p in producer_run.passwords)

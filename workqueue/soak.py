"""``make soak``: a chaos soak of workqueue on a throwaway broker or 3-node cluster, and a checker.

Publishes N uniquely numbered persistent tasks with confirms (the producer fails over and
re-sends what was not confirmed), runs W real worker processes, and meanwhile SIGKILLs
workers, crashes the broker (kill -9 / docker kill) and restarts it gracefully; on a cluster
(``--cluster``) the crashes and restarts hit one node at a time, the quorum queue's leader
first. Every fault is scheduled at a point of progress (after so many tasks are done), so each
happens once, while tasks flow, and the run stops by itself: when every confirmed task is done
and the queue is empty, or at --max-seconds.

The checker, Jepsen-style, counts what was published, confirmed and processed, and fails
(exit 1) when a confirmed task was never processed (lost), a processed task was never
published (unexpected), or duplicates exceed
kills x prefetch + (crashes + restarts) x (workers x prefetch + confirm window)
(a killed worker's prefetch comes back; a broker fault can redeliver every worker's prefetch
and make the producer re-send a whole window). It also fails a run in which a worker exited on
its own (or not with 0 after SIGTERM), and one that makes no progress for --stall-seconds:
it never waits out its whole budget in silence. Broker and node faults are held until the queue
is QUEUE_SETTLE_SECONDS old: a quorum queue crashed sooner loses its confirmed tasks (a RabbitMQ
defect, features/defects.toml).

SIGTERM or Ctrl+C ends every broker and worker the soak started (exit 130, one line); workers
whose soak is killed outright get SIGTERM from the kernel (PR_SET_PDEATHSIG) and exit.
"""

import argparse
import collections
import dataclasses
import logging
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time

from workqueue.timeline import Timeline, Window

log = logging.getLogger(__name__)

#: Age of the queue before the first broker or node fault (see the module's docstring).
QUEUE_SETTLE_SECONDS = 5.0
RECORD_ENV = "WORKQUEUE_SOAK_RECORD"
WORK_ENV = "WORKQUEUE_SOAK_WORK_SECONDS"
_record_fd = None


def record(delivery):
    """Worker handler (``--handler workqueue.soak:record``): note the task as processed.

    One O_APPEND write per task into a file of this process: it is in the file as soon as
    write() returns, so a SIGKILL right after loses nothing that was recorded.
    """
    global _record_fd
    work = float(os.environ.get(WORK_ENV) or 0)
    if work:
        time.sleep(work)                    # the task's simulated work
    if _record_fd is None:
        path = os.path.join(os.environ[RECORD_ENV], f"{os.getpid()}.done")
        _record_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(_record_fd, delivery.body + f" {time.time():.4f}\n".encode())


# -- the parts of one run ------------------------------------------------------------------------
class Records:
    """What the workers recorded (``body time`` lines), read incrementally from their files."""

    def __init__(self, directory):
        self.directory = directory
        self.counts = collections.Counter()
        self.done = []                       # (body, time) of every finish
        self._offsets = {}
        self._partial = {}

    def refresh(self):
        for entry in os.scandir(self.directory):
            if not entry.name.endswith(".done"):
                continue
            with open(entry.path, "rb") as f:
                f.seek(self._offsets.get(entry.name, 0))
                data = f.read()
                self._offsets[entry.name] = f.tell()
            lines = (self._partial.pop(entry.name, b"") + data).split(b"\n")
            if lines[-1]:
                self._partial[entry.name] = lines[-1]
            for line in lines[:-1]:
                if not line:
                    continue
                body, _, at = line.decode(errors="replace").partition(" ")
                self.counts[body] += 1
                try:
                    self.done.append((body, float(at)))
                except ValueError:
                    pass                     # a line without its time: counted, not timed
        return self

    @property
    def unique(self):
        return len(self.counts)

    @property
    def total(self):
        return sum(self.counts.values())


class Workers:
    """W worker processes (``python -m workqueue.worker``), output to files; kill and replace."""

    def __init__(self, urls, queue_options, prefetch, directory, work_seconds=0.0):
        self.urls = urls
        self.work_seconds = work_seconds
        self.options = [*queue_options, "--prefetch", str(prefetch), "--handler", "workqueue.soak:record"]
        self.directory = directory
        self.processes = []
        self.started = 0
        self.killed = set()          # pids the soak killed on purpose
        self.names = {}              # pid -> worker name

    def start(self):
        n = self.started
        self.started += 1
        urls = self.urls[n % len(self.urls):] + self.urls[:n % len(self.urls)]   # spread over nodes
        from workqueue.testing.processes import child_env, die_with_parent
        out = open(os.path.join(self.directory, f"worker-{n}.log"), "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "workqueue.worker", "--name", f"w{n}", *self.options],
            env=child_env({"WORKQUEUE_URL": " ".join(urls), RECORD_ENV: self.directory,
                           WORK_ENV: str(self.work_seconds)}),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        out.close()
        self.processes.append(process)
        self.names[process.pid] = f"w{n}"
        return process

    def alive(self):
        return [p for p in self.processes if p.poll() is None]

    def kill_one(self, rng):
        victim = rng.choice(self.alive())
        self.killed.add(victim.pid)
        victim.kill()
        victim.wait(30)
        self.start()

    def last_lines(self, process, count=3):
        name = self.names[process.pid]
        try:
            with open(os.path.join(self.directory, f"worker-{name[1:]}.log"), "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return "(no output)"
        return " | ".join(lines[-count:]) or "(no output)"

    def exited_on_their_own(self):
        """One line for each worker that exited without being killed by the soak."""
        return [f"worker {self.names[p.pid]} (pid {p.pid}) exited on its own with code {p.returncode}; "
                f"its last lines: {self.last_lines(p)}"
                for p in self.processes if p.poll() is not None and p.pid not in self.killed]

    def stop(self, timeout=60):
        """SIGTERM to every worker: each finishes its task and must exit 0. Returns one line
        for each that did not (or had to be killed)."""
        stopping = self.alive()
        for p in stopping:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        problems = []
        for p in stopping:
            try:
                code = p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(30)
                problems.append(f"worker {self.names[p.pid]} did not exit within {timeout} s of SIGTERM")
                continue
            if code != 0:
                problems.append(f"worker {self.names[p.pid]} exited with code {code} after SIGTERM; "
                                f"its last lines: {self.last_lines(p)}")
        return problems

    def kill_all(self):
        for p in self.alive():
            p.kill()
            p.wait(30)

    def reconnections(self):
        """Times workers started consuming again after a lost connection."""
        total = 0
        for name in os.listdir(self.directory):
            if name.startswith("worker-") and name.endswith(".log"):
                with open(os.path.join(self.directory, name), "rb") as f:
                    total += max(0, f.read().count(b"[*] Waiting for messages") - 1)
        return total


class Publisher(threading.Thread):
    """Publishes the tasks in chunks, keeping at most ``backlog`` confirmed but not processed."""

    def __init__(self, params, queue, bodies, window, backlog, processed, deadline):
        super().__init__(name="soak-publisher", daemon=True)
        from workqueue.producer import Producer
        self.producer = Producer(params, queue, window=window, reconnect_timeout=120)
        self.bodies = bodies
        self.window = window
        self.backlog = backlog
        self.processed = processed             # callable: unique tasks processed so far
        self.deadline = deadline
        self.published = set()
        self.confirmed = set()
        self.published_at = {}                 # body -> first publish (time.time())
        self.confirmed_at = []
        self.error = None
        # The last chunk waits until every scheduled fault has struck: no run ends before them.
        self.faults_done = threading.Event()
        self.at_gate = threading.Event()

    def run(self):
        try:
            with self.producer:
                starts = range(0, len(self.bodies), self.window)
                for start in starts:
                    while len(self.confirmed) - self.processed() >= self.backlog:
                        if time.monotonic() > self.deadline:
                            raise TimeoutError("the workers stopped taking tasks")
                        time.sleep(0.05)        # pacing against the workers, not a synchronisation
                    if start == starts[-1]:
                        self.at_gate.set()
                        if not self.faults_done.wait(max(0.0, self.deadline - time.monotonic())):
                            raise TimeoutError("the scheduled faults did not all happen in time")
                    chunk = self.bodies[start:start + self.window]
                    self.published.update(chunk)
                    now = time.time()
                    for body in chunk:
                        self.published_at.setdefault(body, now)
                    self.producer.publish_many(chunk, on_confirm=self._confirmed)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"

    def _confirmed(self, body):
        self.confirmed.add(body.decode())
        self.confirmed_at.append(time.time())


@dataclasses.dataclass
class Chaos:
    kills: int = 0
    crashes: int = 0
    restarts: int = 0
    pauses: int = 0
    partitions: int = 0
    windows: list = dataclasses.field(default_factory=list)  # timeline.Window of each fault
    log: list = dataclasses.field(default_factory=list)      # failures seen while it ran
    notes: list = dataclasses.field(default_factory=list)    # what it chose, for the reader
    last: str = "start"                                       # the last fault, for messages


def schedule(args, rng):
    """The faults, shuffled, each with the count of processed tasks that triggers it."""
    events = (["kill"] * args.kills + ["crash"] * args.crashes + ["restart"] * args.restarts
              + ["pause"] * args.pauses + ["partition"] * args.partitions)
    rng.shuffle(events)
    step = args.n / (len(events) + 1)
    return collections.deque((int(step * (i + 1)), e) for i, e in enumerate(events))


# -- one run ---------------------------------------------------------------------------------------
def run(args):
    from workqueue.spec import QueueSpec
    from workqueue.testing import make_broker, make_cluster, wait_until

    rng = random.Random(args.seed)
    run_id = secrets.token_hex(3)
    bodies = [f"{run_id}:{i}" for i in range(1, args.n + 1)]
    queue = QueueSpec("soak", queue_type=args.queue_type)
    started = time.monotonic()
    deadline = started + args.max_seconds
    chaos = Chaos()
    target = make_cluster(args.broker) if args.cluster else make_broker(args.broker)
    if args.partitions and not target.can_partition:
        target.close()
        raise Unsupported(f"--partitions needs the container backend: the nodes of a {target.kind} cluster "
                          f"all listen on 127.0.0.1 and cannot be cut off from each other")
    with target, tempfile.TemporaryDirectory(prefix="workqueue-soak-") as directory:
        # Its owner, for reap_orphans(): a soak killed outright cannot remove the directory.
        from workqueue.testing.node import OWNER_FILE
        with open(os.path.join(directory, OWNER_FILE), "w") as owner:
            owner.write(str(os.getpid()))
        boot = time.monotonic() - started
        vhost = target.new_vhost("soak")
        members = target.members
        records = Records(directory)
        workers = Workers([m.url(vhost) for m in members],
                          ["--queue", queue.name, "--queue-type", queue.queue_type], args.prefetch, directory,
                          args.work_ms / 1000)
        try:
            for _ in range(args.workers):
                workers.start()
            params = [m.params(vhost) for m in members]
            publisher = Publisher(params, queue, bodies, args.window,
                                  args.backlog, lambda: records.unique, deadline)
            run_started = time.monotonic()
            timeline = Timeline(start=time.time())
            publisher.start()
            events = schedule(args, rng)
            total_faults = len(events)
            interactive = args.progress == "auto" and sys.stderr.isatty()
            recovering = []            # the thread bringing a cluster node back, if any
            # No broker or node fault before the queue has settled (see QUEUE_SETTLE_SECONDS).
            settled_at = run_started + QUEUE_SETTLE_SECONDS
            progress = {"seen": (0, 0), "at": time.monotonic(), "shown": time.monotonic()}

            def down_then_back(member, done_then, window):
                # A node of a cluster stays down until the others have done more work, then
                # rejoins; in the meantime the main loop goes on (and may kill workers).
                try:
                    wait_until(lambda: records.unique >= min(done_then + max(args.n // 100, 1),
                                                             len(publisher.confirmed)),
                               60, f"work to go on without {member.node_name}")
                except TimeoutError as exc:
                    chaos.log.append(str(exc))
                target.recover(member)
                window.end = time.time()

            def held_then_back(member, kind, window):
                # A pause or a partition lasts --fault-seconds (the fault's length, long enough
                # for the quorum queue to elect another leader: not a synchronisation), then ends.
                threading.Event().wait(args.fault_seconds)
                (target.resume_member if kind == "pause" else target.heal)(member)
                window.end = time.time()
                if target.can_work_without(member):
                    # Asked of the other nodes: the faulted node's own view can be stale (a
                    # paused node named itself leader right after its pause).
                    try:
                        leader = target.wait_new_leader(vhost, queue.name, member, timeout=30)
                        window.note = f"leader after: {leader.node_name}"
                    except Exception as exc:  # the note is for the reader only
                        window.note = f"leader after: none named by the other nodes ({type(exc).__name__})"

            def fault(kind):
                chaos.last = f"{kind} at {records.unique} tasks processed"
                if kind == "kill":
                    workers.kill_one(rng)
                    chaos.kills += 1
                    now = time.time()
                    chaos.windows.append(Window("kill", "a worker", now, now))
                    return
                member = target.fault_member(vhost, queue.name)   # one broker, or the queue's leader node
                now = time.time()
                window = Window(kind, _member_label(target, member), now, now)
                chaos.windows.append(window)
                if kind in ("pause", "partition"):
                    (target.pause_member if kind == "pause" else target.partition)(member)
                    back, back_args = held_then_back, (member, kind, window)
                else:
                    target.crash(member) if kind == "crash" else target.stop_member(member)
                    back, back_args = down_then_back, (member, records.unique, window)
                if target.can_work_without(member):
                    thread = threading.Thread(target=back, args=back_args, daemon=True)
                    thread.start()
                    recovering[:] = [thread]
                elif kind in ("pause", "partition"):
                    held_then_back(*back_args)
                else:
                    target.recover(member)
                    window.end = time.time()
                if kind == "crash":
                    chaos.crashes += 1
                elif kind == "restart":
                    chaos.restarts += 1
                elif kind == "pause":
                    chaos.pauses += 1
                else:
                    chaos.partitions += 1
                progress["at"] = time.monotonic()      # the stall clock starts after recovery

            def show_progress(final=False):
                """done / N and faults so far: one line updated in place on a terminal, a plain
                line every 30 s otherwise (CI logs), nothing with --progress none."""
                now = time.monotonic()
                if args.progress == "none":
                    return
                if not final and now - progress["shown"] < (1 if interactive else 30):
                    return
                progress["shown"] = now
                fired = total_faults - len(events)
                line = (f"soak: {records.unique}/{args.n} done, {len(publisher.confirmed)} confirmed, "
                        f"faults {fired}/{total_faults} (last: {chaos.last}), {now - run_started:.0f} s")
                if interactive:
                    sys.stderr.write("\r\033[K" + line + ("\n" if final else ""))
                    sys.stderr.flush()
                elif not final:
                    print(line, file=sys.stderr, flush=True)

            def work_remains():
                return publisher.is_alive() or records.unique < len(publisher.confirmed)

            def node_returning():
                return bool(recovering) and recovering[0].is_alive()

            def may_strike(kind):
                if kind == "kill":
                    return True
                if node_returning():
                    return False
                if time.monotonic() < settled_at:
                    note = (f"broker and node faults held until the queue was {QUEUE_SETTLE_SECONDS:g} s old "
                            f"(a quorum queue crashed sooner loses its confirmed tasks: RabbitMQ defect "
                            f"quorum_early_crash)")
                    if note not in chaos.notes:
                        chaos.notes.append(note)
                    return False
                return True

            def check_moving():
                dead = workers.exited_on_their_own()
                if dead:
                    raise Stop("; ".join(dead))
                seen = (records.unique, len(publisher.confirmed))
                now = time.monotonic()
                if seen != progress["seen"] or node_returning():
                    progress.update(seen=seen, at=now)
                elif now - progress["at"] > args.stall_seconds:
                    raise Stop(f"no task processed or confirmed for {args.stall_seconds:g} s after the "
                               f"{chaos.last}: queue {queue.name!r} {_queue_state(target, vhost, queue.name)}")

            def finished():
                records.refresh()
                show_progress()
                # Each fault strikes while work remains; a broker or node fault waits until the
                # previous node is back. A fault that never found work to hit is reported.
                # A fault due while the publisher holds back its last chunk strikes at once.
                while (events and (records.unique >= events[0][0] or publisher.at_gate.is_set())
                       and work_remains() and may_strike(events[0][1])):
                    _, kind = events.popleft()
                    log.info("%s at %d tasks processed", kind, records.unique)
                    fault(kind)
                    records.refresh()
                if not events:
                    publisher.faults_done.set()
                if work_remains() or node_returning() or not publisher.confirmed <= set(records.counts):
                    check_moving()
                    return False
                return _queue_empty(target, vhost, queue.name)

            timed_out = None
            try:
                wait_until(finished, max(1.0, deadline - time.monotonic()), "every confirmed task to be processed",
                           interval=0.2)
            except TimeoutError as exc:
                timed_out = str(exc)
            except Stop as exc:
                chaos.log.append(str(exc))
            show_progress(final=True)
            wall = time.monotonic() - run_started
            chaos.log.extend(workers.stop())
        except BaseException:
            # Ctrl+C, SIGTERM or an error: the publisher thread would log its reconnect attempts
            # while the broker goes away; the one line that matters is printed by main().
            logging.disable(logging.CRITICAL)
            raise
        finally:
            workers.kill_all()                 # on any way out
        records.refresh()
        return Result(args=args, version=target.version, kind=target.kind, boot=boot, wall=wall,
                      published=publisher.published, confirmed=publisher.confirmed, counts=records.counts,
                      chaos=chaos, producer_error=publisher.error, timed_out=timed_out,
                      producer_reconnections=publisher.producer.reconnections,
                      resent_after_nack=publisher.producer.resent_after_nack,
                      worker_reconnections=workers.reconnections(), workers_started=workers.started,
                      unfired=len(events),
                      timeline=dataclasses.replace(timeline, published=publisher.published_at,
                                                   confirmed=list(publisher.confirmed_at), done=list(records.done),
                                                   windows=chaos.windows))


def _member_label(target, member):
    """``node 2 (rabbit@host2)`` in a cluster, ``the broker`` alone (the plot keeps the first words)."""
    if len(target.members) == 1:
        return "the broker"
    return f"node {target.members.index(member) + 1} ({member.node_name})"


class Unsupported(Exception):
    """What was asked cannot be done on this backend (exit 2)."""


class Stop(Exception):
    """The run cannot come to a verdict by waiting longer: a worker died, or nothing moves."""


def _queue_state(target, vhost, queue):
    """What the management API says of the queue, for a stalled run's message."""
    try:
        info = target.management.queue(vhost, queue)
    except Exception as exc:
        return f"cannot be read ({' '.join(str(exc).split())[:120]})"
    state = info.get("state", "?")
    ready = info.get("messages_ready")
    hint = ""
    if info.get("type") == "quorum":
        hint = ("; a quorum queue crashed within seconds of its declaration stays unavailable "
                "(RabbitMQ defect quorum_early_crash, features/defects.toml)")
    return f"is {state}, {'?' if ready is None else ready} ready, leader {info.get('leader', '?')}{hint}"


def _queue_empty(target, vhost, queue):
    """No task ready or unacknowledged (management API; lags by a second or so)."""
    try:
        info = target.management.queue(vhost, queue)
    except Exception:
        return False
    return info.get("messages") == 0 and info.get("messages_unacknowledged") == 0   # absent: unknown


# -- the checker --------------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    args: argparse.Namespace
    version: str
    kind: str
    boot: float
    wall: float
    published: set
    confirmed: set
    counts: collections.Counter
    chaos: Chaos
    producer_error: str | None
    timed_out: str | None
    producer_reconnections: int
    worker_reconnections: int
    resent_after_nack: int
    workers_started: int
    unfired: int
    timeline: Timeline | None = None

    @property
    def lost(self):
        return sorted(self.confirmed - set(self.counts))

    @property
    def unexpected(self):
        return sorted(set(self.counts) - self.published)

    @property
    def duplicates(self):
        return sum(self.counts.values()) - len(self.counts)

    @property
    def duplicate_bound(self):
        """A killed worker's prefetch comes back; a broker or node fault can redeliver every
        worker's prefetch and make the producer re-send its whole confirm window."""
        a = self.args
        return (self.chaos.kills * a.prefetch
                + self.broker_faults * (a.workers * a.prefetch + a.window))

    @property
    def broker_faults(self):
        c = self.chaos
        return c.crashes + c.restarts + c.pauses + c.partitions

    def failures(self):
        out = []
        if self.lost:
            out.append(f"{len(self.lost)} confirmed task(s) never processed, e.g. {self.lost[:5]}")
        if self.unexpected:
            out.append(f"{len(self.unexpected)} processed task(s) never published, e.g. {self.unexpected[:5]}")
        if self.duplicates > self.duplicate_bound:
            out.append(f"{self.duplicates} duplicates, over the bound of {self.duplicate_bound}")
        if self.producer_error:
            out.append(f"the producer gave up: {self.producer_error}")
        if self.timed_out:
            out.append(self.timed_out)
        if len(self.confirmed) < self.args.n and not self.producer_error:
            out.append(f"only {len(self.confirmed)} of {self.args.n} tasks confirmed")
        if self.unfired:
            out.append(f"{self.unfired} scheduled fault(s) never happened: the work was done first "
                       f"(more tasks, or --work-ms, make room for them)")
        out.extend(self.chaos.log)
        return out

    def title(self):
        a = self.args
        where = f"{'3-node cluster' if a.cluster else 'one broker'}, durable {a.queue_type} queue"
        return (f"chaos soak: RabbitMQ {self.version} ({self.kind}, {where}); N={a.n}, {a.workers} workers, "
                f"prefetch {a.prefetch}, confirm window {a.window}, {a.work_ms:g} ms of work a task, seed {a.seed}")

    def table(self):
        a = self.args
        fault = "node" if a.cluster else "broker"
        rows = [
            ("published", len(self.published), "distinct tasks handed to the producer"),
            ("confirmed", len(self.confirmed), "confirmed by the broker (after re-sends, if any)"),
            ("processed (unique)", len(self.counts), "distinct tasks a worker finished"),
            ("lost", len(self.lost), "confirmed, never processed (must be 0)"),
            ("unexpected", len(self.unexpected), "processed, never published (must be 0)"),
            ("duplicates", self.duplicates,
             f"extra runs of a task; bound: kills x prefetch + (crashes + restarts + pauses + partitions)"
             f" x (workers x prefetch + window) = {self.chaos.kills}x{a.prefetch} + {self.broker_faults}"
             f"x({a.workers}x{a.prefetch}+{a.window}) = {self.duplicate_bound}"),
            ("worker kills", self.chaos.kills, "SIGKILL of a busy worker, replaced at once"),
            (f"{fault} crashes", self.chaos.crashes, "kill -9 / docker kill, then start on the same data"),
            (f"graceful {fault} restarts", self.chaos.restarts, "stop, then start"),
            (f"{fault} pauses", self.chaos.pauses,
             f"SIGSTOP / docker pause for {a.fault_seconds:g} s, then SIGCONT / unpause"),
            (f"{fault} partitions", self.chaos.partitions,
             f"cut off from the other nodes and the clients for {a.fault_seconds:g} s, then joined again"),
            ("producer reconnections", self.producer_reconnections, "unconfirmed tasks re-sent each time"),
            ("re-sent after a nack", self.resent_after_nack, "tasks the broker nacked (no leader yet), sent again"),
            ("worker reconnections", self.worker_reconnections, f"over {self.workers_started} worker processes"),
            ("wall time", f"{self.wall:.0f} s", f"from the first publish to the last task; boot {self.boot:.0f} s"),
        ]
        latency = self.timeline.summary() if self.timeline else None
        if latency:
            rows.append(("latency p50", f"{latency['p50']:.3f} s",
                         f"publish to first done, over every task; p90 {latency['p90']:.3f} s, "
                         f"p99 {latency['p99']:.3f} s, max {latency['max']:.3f} s"))
        for w in (self.timeline.windows if self.timeline else []):
            if w.kind in ("pause", "partition"):
                rows.append((f"  {w.kind}", f"{w.end - w.start:.0f} s",
                             f"{w.member} at {w.start - self.timeline.start:.0f} s"
                             + (f"; {w.note}" if w.note else "")))
        lines = [self.title(),
                 f"{'':<26}{'count':>9}  notes"]
        lines += [f"{name:<26}{value:>9}  {note}" for name, value, note in rows]
        lines += [f"note: {note}" for note in self.chaos.notes]
        failures = self.failures()
        lines.append("verdict: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
        return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m workqueue.soak", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="exit codes: 0 PASS; 1 FAIL (the checker's verdict, or a run that could "
                                       "not come to one); 2 bad usage, a fault the backend cannot make, or "
                                       "a missing extra (test, plot); 3 the "
                                       "broker could not be started; 130 interrupted (Ctrl+C, SIGTERM)")
    p.add_argument("-n", type=int, default=10_000, help="tasks to publish, each uniquely numbered")
    p.add_argument("--workers", type=int, default=4, help="worker processes running at any time")
    p.add_argument("--prefetch", type=int, default=10, help="each worker's prefetch")
    p.add_argument("--window", type=int, default=500, help="the producer's confirm window")
    p.add_argument("--backlog", type=int, default=1000,
                   help="most tasks confirmed but not yet processed (paces the producer, so that faults "
                        "hit it too)")
    p.add_argument("--queue-type", choices=("quorum", "classic"), default="quorum",
                   help="the task queue's type (a cluster needs quorum to survive a node)")
    p.add_argument("--kills", type=int, default=5, help="worker SIGKILLs")
    p.add_argument("--crashes", type=int, default=1, help="broker crashes (on --cluster: node crashes)")
    p.add_argument("--restarts", type=int, default=1, help="graceful broker (node) restarts")
    p.add_argument("--pauses", type=int, default=0,
                   help="broker (node) pauses: SIGSTOP / docker pause of the broker, or of the quorum "
                        "queue's leader node, for --fault-seconds")
    p.add_argument("--partitions", type=int, default=0,
                   help="network partitions (--cluster on the container backend): the leader node cut "
                        "off from the other nodes and the clients for --fault-seconds")
    p.add_argument("--fault-seconds", type=float, default=20,
                   help="how long a pause or a partition lasts (long enough for a new leader)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw the run: tasks confirmed and done per second, latency, fault windows "
                        "(needs the plot extra: matplotlib)")
    p.add_argument("--progress", choices=("auto", "plain", "none"), default="auto",
                   help="progress on stderr: auto (one line updated in place on a terminal, else a "
                        "line every 30 s), plain, none")
    p.add_argument("--work-ms", type=float, default=0, help="simulated work per task, in milliseconds")
    p.add_argument("--cluster", action="store_true", help="a 3-node cluster with a quorum queue")
    p.add_argument("--broker", default=None, choices=("auto", "node", "container"))
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument("--max-seconds", type=float, default=900, help="the run stops after this, finished or not")
    p.add_argument("--stall-seconds", type=float, default=60,
                   help="the run fails when no task is processed or confirmed for this long")
    p.add_argument("-v", "--verbose", action="store_true", help="log each fault as it happens")
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1_000_000)
    if args.n < 1 or args.workers < 1 or args.prefetch < 1 or args.window < 1:
        p.error("-n, --workers, --prefetch and --window must be at least 1")
    if min(args.kills, args.crashes, args.restarts, args.pauses, args.partitions) < 0 or args.fault_seconds <= 0:
        p.error("fault counts must be 0 or more, and --fault-seconds more than 0")
    if args.partitions and not args.cluster:
        p.error("--partitions needs --cluster (a node is cut off from the other two)")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(f"{p.prog}: error: --plot needs matplotlib: pip install 'workqueue[plot]'", file=sys.stderr)
            return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    from workqueue.testing import BrokerError, MissingExtra
    from workqueue.testing.processes import stopped_by_signals
    try:
        with stopped_by_signals("soak"):
            result = run(args)
    except MissingExtra as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Unsupported as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return 2
    except BrokerError as exc:
        print(f"{p.prog}: error: {' '.join(str(exc).split())[:500]}", file=sys.stderr)
        return 3
    print(result.table(), flush=True)
    if args.plot and result.timeline is not None:
        result.timeline.plot(args.plot, result.title())
        print(f"plot: {args.plot}", flush=True)
    return 1 if result.failures() else 0


if __name__ == "__main__":
    sys.exit(main())

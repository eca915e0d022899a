"""One soak run: the loop that drives the generator, the nemesis and the clients, then the checker."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import secrets
import sys
import tempfile
import time

from soak.checker import Facts, Result, check
from soak.client import Publisher, Workers
from soak.config import Config
from soak.generator import Generator
from soak.history import DoneFiles, History
from soak.nemesis import Nemesis
from workqueue.spec import QueueSpec
from workqueue.testing import QUEUE_SETTLE_SECONDS, make_broker, make_cluster, wait_until

log = logging.getLogger("soak")


class Unsupported(Exception):
    """What was asked cannot be done on this backend (exit 2)."""


class Stop(Exception):
    """The run cannot come to a verdict by waiting longer: a worker died, or nothing moves."""


def run(config: Config) -> Result:
    rng = random.Random(config.seed)
    bodies = [f"{secrets.token_hex(3)}:{i}" for i in range(1, config.n + 1)]
    queue = QueueSpec("soak", queue_type=config.queue_type)
    started = time.monotonic()
    deadline = started + config.max_seconds
    target = _target(config)
    with target, _directory() as directory:
        facts = Facts(target.version, target.kind, boot=time.monotonic() - started)
        vhost = target.new_vhost("soak")
        urls = [m.url(vhost) for m in target.members]
        workers = Workers(urls, ["--queue", queue.name, "--queue-type", queue.queue_type], config.prefetch,
                          directory, config.work_ms / 1000)
        try:
            for _ in range(config.workers):
                workers.start()
            history, files = History(), DoneFiles(directory)
            publisher = Publisher([m.params(vhost) for m in target.members], queue, bodies, config.window,
                                  config.backlog, history, deadline)
            generator = Generator(config, rng)
            nemesis = Nemesis(target, vhost, queue.name, workers, history, rng, config.fault_seconds, config.n,
                              lambda: len(history.confirmed))
            watch = Watch(config, generator, nemesis, history)
            publisher.start()
            settled_at = time.monotonic() + QUEUE_SETTLE_SECONDS

            def finished():
                files.refresh(history)
                watch.show()
                # Each fault strikes while work remains; a broker or node fault waits until the
                # previous node is back and the queue has settled.
                while (kind := generator.due(history.unique_done, publisher.at_gate.is_set())) and work_remains():
                    if not _may_strike(kind, nemesis, settled_at, watch):
                        break
                    log.info("%s at %d tasks processed", generator.take(), history.unique_done)
                    nemesis.invoke(kind)
                    watch.moved()                  # the stall clock starts after the fault
                    files.refresh(history)
                if not generator.remaining:
                    publisher.faults_done.set()
                if work_remains() or nemesis.returning() or not history.confirmed <= set(history.done):
                    watch.check_moving(workers, target, vhost, queue.name)
                    return False
                return _queue_empty(target, vhost, queue.name)

            def work_remains():
                return publisher.is_alive() or history.unique_done < len(history.confirmed)

            run_started = time.monotonic()
            try:
                wait_until(finished, max(1.0, deadline - time.monotonic()), "every confirmed task to be processed",
                           interval=0.2)
            except TimeoutError as exc:
                facts.timed_out = str(exc)
            except Stop as exc:
                facts.problems.append(str(exc))
            watch.show(final=True)
            facts.wall = time.monotonic() - run_started
            facts.problems[:0] = nemesis.problems
            facts.problems.extend(workers.stop())
        except BaseException:
            # Ctrl+C, SIGTERM or an error: the publisher thread would log its reconnect attempts
            # while the broker goes away; the one line that matters is printed by main().
            logging.disable(logging.CRITICAL)
            raise
        finally:
            workers.kill_all()                 # on any way out
        files.refresh(history)
        _gather(facts, watch, generator, publisher, workers)
        return check(config, history, facts)


def _gather(facts, watch, generator, publisher, workers):
    """What the run measured beside the history, once it is over."""
    facts.notes, facts.unfired = watch.notes, generator.remaining
    facts.producer_error = publisher.error
    facts.producer_reconnections = publisher.producer.reconnections
    facts.resent_after_nack = publisher.producer.resent_after_nack
    facts.worker_reconnections, facts.workers_started = workers.reconnections(), workers.started


def _target(config):
    """The broker or the 3-node cluster the run is asked for (not yet started)."""
    target = make_cluster(config.broker) if config.cluster else make_broker(config.broker)
    if config.partitions and not target.can_partition:
        target.close()
        from workqueue.testing.plugin import partition_unavailable
        raise Unsupported(f"--partitions: {partition_unavailable(target.kind) or 'this backend cannot cut a node off'}")
    return target


def _may_strike(kind, nemesis, settled_at, watch):
    """A worker kill strikes at once; a broker or node fault waits until the node of the last
    one is back, and until the queue has settled (QUEUE_SETTLE_SECONDS)."""
    if kind == "kill":
        return True
    if time.monotonic() < settled_at:
        watch.note_held()
        return False
    return not nemesis.returning()


class Watch:
    """The run's progress on stderr, and its stall clock: the run fails, rather than waiting
    out its budget, when a worker exits on its own or nothing moves for ``stall_seconds``."""

    def __init__(self, config, generator, nemesis, history):
        self.config, self.generator, self.nemesis, self.history = config, generator, nemesis, history
        self.interactive = config.progress == "auto" and sys.stderr.isatty()
        self.seen = (0, 0)
        self.at = self.shown = self.started = time.monotonic()
        self.notes: list[str] = []

    def moved(self):
        self.at = time.monotonic()

    def note_held(self):
        note = (f"broker and node faults held until the queue was {QUEUE_SETTLE_SECONDS:g} s old "
                f"(a quorum queue crashed sooner loses its confirmed tasks: RabbitMQ defect quorum_early_crash)")
        if note not in self.notes:
            self.notes.append(note)

    def check_moving(self, workers, target, vhost, queue):
        dead = workers.exited_on_their_own()
        if dead:
            raise Stop("; ".join(dead))
        seen = (self.history.unique_done, len(self.history.confirmed))
        now = time.monotonic()
        if seen != self.seen or self.nemesis.returning():
            self.seen, self.at = seen, now
        elif now - self.at > self.config.stall_seconds:
            raise Stop(f"no task processed or confirmed for {self.config.stall_seconds:g} s after the "
                       f"{self.nemesis.last}: queue {queue!r} {_queue_state(target, vhost, queue)}")

    def show(self, final=False):
        """done / N and faults so far: one line updated in place on a terminal, a plain line
        every 30 s otherwise (CI logs), nothing with --progress none."""
        now = time.monotonic()
        if self.config.progress == "none" or (not final and now - self.shown < (1 if self.interactive else 30)):
            return
        self.shown = now
        line = (f"soak: {self.history.unique_done}/{self.config.n} done, {len(self.history.confirmed)} confirmed, "
                f"faults {self.generator.fired}/{self.generator.total} (last: {self.nemesis.last}), "
                f"{now - self.started:.0f} s")
        if self.interactive:
            sys.stderr.write("\r\033[K" + line + ("\n" if final else ""))
            sys.stderr.flush()
        elif not final:
            print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _directory():
    """The run's directory (the workers' records and output), with its owner's pid for
    ``reap_orphans()``: a soak killed outright cannot remove it itself."""
    from workqueue.testing.node import OWNER_FILE
    with tempfile.TemporaryDirectory(prefix="workqueue-soak-") as directory:
        with open(os.path.join(directory, OWNER_FILE), "w") as owner:
            owner.write(str(os.getpid()))
        yield directory


def _queue_state(target, vhost, queue):
    """What the management API says of the queue, for a stalled run's message."""
    try:
        info = target.management.queue(vhost, queue)
    except Exception as exc:
        return f"cannot be read ({' '.join(str(exc).split())[:120]})"
    ready = info.get("messages_ready")
    hint = ""
    if info.get("type") == "quorum":
        hint = ("; a quorum queue crashed within seconds of its declaration stays unavailable "
                "(RabbitMQ defect quorum_early_crash, features/defects.toml)")
    return (f"is {info.get('state', '?')}, {'?' if ready is None else ready} ready, "
            f"leader {info.get('leader', '?')}{hint}")


def _queue_empty(target, vhost, queue):
    """No task ready or unacknowledged (management API; lags by a second or so)."""
    try:
        info = target.management.queue(vhost, queue)
    except Exception:
        return False
    return info.get("messages") == 0 and info.get("messages_unacknowledged") == 0   # absent: unknown

"""The soak's clients: one publisher thread (``workqueue.Producer``) and W worker processes
(``workqueue.testing.processes.WorkerProcess``), both writing into the history."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from soak.handlers import RECORD_ENV, WORK_ENV
from soak.history import History
from workqueue.producer import Producer
from workqueue.testing.processes import WorkerProcess


class Publisher(threading.Thread):
    """Publishes the tasks in chunks of one confirm window, keeping at most ``backlog``
    confirmed but not processed; the last chunk waits until every scheduled fault struck."""

    def __init__(self, params, queue, bodies, window, backlog, history: History, deadline):
        super().__init__(name="soak-publisher", daemon=True)
        self.producer = Producer(params, queue, window=window, reconnect_timeout=120)
        self.bodies = bodies
        self.window = window
        self.backlog = backlog
        self.history = history
        self.deadline = deadline
        self.error: str | None = None
        self.faults_done = threading.Event()
        self.at_gate = threading.Event()         # it holds back its last chunk for the faults

    def run(self):
        history = self.history
        try:
            with self.producer:
                starts = range(0, len(self.bodies), self.window)
                for start in starts:
                    while len(history.confirmed) - history.unique_done >= self.backlog:
                        if time.monotonic() > self.deadline:
                            raise TimeoutError("the workers stopped taking tasks")
                        time.sleep(0.05)        # pacing against the workers, not a synchronisation
                    if start == starts[-1]:
                        self.at_gate.set()
                        if not self.faults_done.wait(max(0.0, self.deadline - time.monotonic())):
                            raise TimeoutError("the scheduled faults did not all happen in time")
                    chunk = self.bodies[start:start + self.window]
                    history.publish(chunk)
                    self.producer.publish_many(chunk, on_confirm=lambda body: history.confirm(body.decode()))
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"


class Workers:
    """W worker processes with the soak's handler, output to files in ``directory``; kill one
    and replace it at once."""

    def __init__(self, urls, queue_options, prefetch, directory, work_seconds=0.0):
        self.urls = urls
        self.env = {RECORD_ENV: directory, WORK_ENV: str(work_seconds)}
        self.options = [*queue_options, "--prefetch", str(prefetch), "--handler", "soak.handlers:record"]
        self.directory = directory
        self.processes: list[WorkerProcess] = []
        self.killed: set[int] = set()            # pids the soak killed on purpose

    @property
    def started(self):
        return len(self.processes)

    def start(self) -> WorkerProcess:
        n = len(self.processes)
        urls = self.urls[n % len(self.urls):] + self.urls[:n % len(self.urls)]   # spread over nodes
        worker = WorkerProcess(f"w{n}", urls, "--name", f"w{n}", *self.options, env=self.env,
                               output=os.path.join(self.directory, f"worker-{n}.log"))
        self.processes.append(worker)
        return worker

    def alive(self):
        return [w for w in self.processes if w.process.poll() is None]

    def kill_one(self, rng):
        victim = rng.choice(self.alive())
        self.killed.add(victim.pid)
        try:
            victim.kill()
        finally:
            self.start()
        return victim

    @staticmethod
    def last_lines(worker, count=3):
        return " | ".join(worker.output_lines()[-count:]) or "(no output)"

    def exited_on_their_own(self):
        """One line for each worker that exited without being killed by the soak."""
        return [f"worker {w.name} (pid {w.pid}) exited on its own with code {w.process.returncode}; "
                f"its last lines: {self.last_lines(w)}"
                for w in self.processes if w.process.poll() is not None and w.pid not in self.killed]

    def stop(self, timeout=60):
        """SIGTERM to every worker: each finishes its task and must exit 0. Returns one line
        for each that did not (or had to be killed)."""
        stopping = self.alive()
        for w in stopping:
            w.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        problems = []
        for w in stopping:
            try:
                code = w.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.close()
                problems.append(f"worker {w.name} did not exit within {timeout} s of SIGTERM")
                continue
            if code != 0:
                problems.append(f"worker {w.name} exited with code {code} after SIGTERM; "
                                f"its last lines: {self.last_lines(w)}")
        return problems

    def kill_all(self):
        for w in self.processes:
            w.close()

    def reconnections(self):
        """Times workers started consuming again after a lost connection."""
        return sum(max(0, w.consuming_count() - 1) for w in self.processes)

"""Real worker processes (``python -m workqueue.worker``) whose output is read line by line.

A kill is a real kill (SIGKILL of the process), a freeze a real SIGSTOP. Every wait has a
deadline and, when it runs out, says what it waited for and what the worker printed.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, TypeVar

from workqueue.urls import scrub, secrets_of

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for a child process: SIGTERM it when its parent dies, even by SIGKILL
    (Linux prctl PR_SET_PDEATHSIG), so that no worker runs on after the tool that started it.
    A worker takes SIGTERM as "finish the current task and exit"."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):       # not Linux: the parent's own clean-up still applies
        pass


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a command the harness starts: this process's without any WORKQUEUE_*
    variable (a command gets its broker, queue and options from the harness, never from the
    user's shell: WORKQUEUE_MANAGEMENT_URL or WORKQUEUE_URL set there would point it elsewhere),
    plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKQUEUE_")}
    env.update(extra or {})
    return env


#: Crashes of the code under test seen in this process since ``crashes.clear()``: a command or a
#: worker that printed a Python traceback (an uncaught exception). The mutants' verdict plugin
#: reads them: a Then that fails after one is "crashed", never "killed".
crashes: list[str] = []
_TRACEBACK = "Traceback (most recent call last):"


def note_crashes(who: str, stderr: str | Sequence[str]) -> list[str]:
    """Record (in ``crashes``) each uncaught exception ``who`` printed on its stderr, by its last
    line (``NameError: name 'x' is not defined``); return the ones found."""
    lines = stderr.splitlines() if isinstance(stderr, str) else list(stderr)
    found = []
    in_traceback = False
    for line in lines:
        if line.startswith(_TRACEBACK):
            in_traceback = True
        elif in_traceback and line and not line.startswith((" ", "\t")):
            in_traceback = False
            found.append(f"{who} crashed: {line.strip()[:200]}")
    crashes.extend(found)
    return found


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: state, ppid, ..."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (one that another user owns counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return _stat(pid)[0] != "Z"
    except (OSError, IndexError):
        return True


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt()


@contextlib.contextmanager
def stopped_by_signals(prog: str) -> Iterator[None]:
    """SIGTERM acts as Ctrl+C inside the block: the with-statements in it close what they
    started (brokers, workers) on the way out; then one line on stderr and exit 130.

    SIGINT is set explicitly too: a process started with SIGINT ignored (by a shell's ``&``
    without job control, or nohup'd scripts) would otherwise never see Ctrl+C or ``kill -INT``
    and run on, with its brokers and workers, until killed outright."""
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"{prog}: interrupted; every broker and worker it started is stopped", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if not interrupted:
            signal.signal(signal.SIGINT, previous_int)

RECEIVED = re.compile(r"\[x\] Received (?P<body>.+?)(?P<redelivered> \(redelivered\))?$")


def finished_tasks(lines: Sequence[str]) -> list[Any]:
    """Bodies of the tasks a worker's output shows done: each Received line followed by its
    Done line (a task received again after a reconnect counts once more when done again)."""
    return [body for kind, body, _ in events_of(lines) if kind == "done"]


#: (kind, body, redelivered): kind is "consuming", "received" or "done".
Event = tuple[str, Any, bool]


def _body(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def events_of(lines: Sequence[str]) -> list[Event]:
    """The events in the project's worker's lines: "[*] Waiting for messages" (consuming),
    "[x] Received ..." and the "[x] Done" that follows it."""
    events: list[Event] = []
    current: str | None = None
    for line in lines:
        m = RECEIVED.search(line)
        if m:
            current = m.group("body")
            events.append(("received", _body(current), bool(m.group("redelivered"))))
        elif "[x] Done" in line and current is not None:
            events.append(("done", _body(current), False))
            current = None
        elif "[*] Waiting for messages" in line:
            events.append(("consuming", None, False))
    return events


def read_events(text: str) -> list[Event]:
    """The events of an events file: one JSON object per line, {"event": "consuming"},
    {"event": "received", "body": ..., "redelivered": true|false}, {"event": "done", "body": ...};
    a line being written (no newline yet) or not an object of these is left out."""
    events: list[Event] = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            record = json.loads(line)
        except ValueError:
            continue
        kind = record.get("event") if isinstance(record, dict) else None
        if kind in ("consuming", "received", "done"):
            # body_repr: the project's worker's way with a body that is not UTF-8 text (b'...')
            body = _body(record["body_repr"]) if "body_repr" in record else record.get("body")
            events.append((kind, body, bool(record.get("redelivered", False))))
    return events


class WorkerExited(AssertionError):
    """The worker exited (and all it printed was read) before what was awaited happened."""


class WorkerDidNotStart(WorkerExited):
    """The worker exited before it ever consumed: a start-up crash (a bad option, a module
    that does not import), not an outcome of what a scenario did to it."""


class WorkerProcess:
    """``url``: one broker URL, or several (the nodes of a cluster, tried in that order).

    Its stdout and stderr are read line by line as they come; with ``output`` (a file path)
    they go to that file instead, both, and are read from it when asked (a soak's workers
    print thousands of lines a second, which no thread of the soak should have to read)."""

    def __init__(self, name: str, url: str | Sequence[str], *options: str, env: dict[str, str] | None = None,
                 cwd: str | None = None, on_line: Callable[[str], object] | None = None,
                 output: str | None = None, command: Sequence[str] | None = None,
                 events: str | None = None):
        self.name = name
        self.options = list(options)
        self.on_line = on_line   # called with each stdout line as it arrives (the demo prints them)
        self.output = output
        self.lines: list[str] = []          # stdout, without the name prefix (empty with ``output``)
        self.errors: list[str] = []         # stderr (empty with ``output``)
        # The broker's password, wherever a worker prints it (a client that puts its URL in an
        # error message: rabbitmq-amqp-python-client does), is kept out of everything read here,
        # and so out of every report and failure message made from it. ``url`` is the URL any
        # implementation is given too (contract.start_worker: its WORKER_URL).
        urls = [url] if isinstance(url, str) else list(url)
        self.secrets: set[str] = set().union(*(secrets_of(u) for u in urls))
        self._cond = threading.Condition()
        self._streams_closed = 0   # 2: the process closed stdout and stderr (exited), all read
        # Every worker's events are read from the file ``events`` (JSON lines), not from what it
        # prints: the project's worker writes one given with --events (a soak's, writing to
        # ``output``, has none). Another implementation (``command``): its own program, in a
        # process group of its own (a kill or a freeze reaches its children too), stdin a pipe.
        if command is None and events is None and output is None:
            fd, events = tempfile.mkstemp(prefix=f"events-workqueue-{name}-", suffix=".jsonl")
            os.close(fd)
        self.events_path = events
        self.group = command is not None
        # An implementation that does not report "consuming": how many consumers the broker
        # lists for it instead (set by whoever starts it).
        self.consuming_probe: Callable[[], int] | None = None
        if command is None:
            command = [sys.executable, "-u", "-m", "workqueue.worker", *options,
                       *(["--events", events] if events is not None else [])]
            env = child_env({**(env or {}), "WORKQUEUE_URL": url if isinstance(url, str) else " ".join(url),
                             "PYTHONUNBUFFERED": "1"})
        else:
            command = list(command)
            env = child_env(env)
        self.command = command
        self.process: subprocess.Popen[Any]
        if output is not None:
            with open(output, "ab") as file:
                self.process = subprocess.Popen(command, env=env, stdout=file, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, cwd=cwd, preexec_fn=die_with_parent)
            self._streams_closed = 2
            return
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if self.group else subprocess.DEVNULL, text=True, errors="replace",
            cwd=cwd, preexec_fn=die_with_parent, process_group=0 if self.group else None)
        for stream, sink in ((self.process.stdout, self.lines), (self.process.stderr, self.errors)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    def output_lines(self) -> list[str]:
        """What it printed so far: stdout, or with ``output`` everything in that file."""
        if self.output is None:
            with self._cond:
                return list(self.lines)
        try:
            with open(self.output, "rb") as f:
                return f.read().decode(errors="replace").splitlines()
        except OSError:
            return []

    def _read(self, stream: IO[str], sink: list[str]) -> None:
        for line in stream:
            line = scrub(line.rstrip("\n"), self.secrets)
            if self.on_line is not None and sink is self.lines:
                self.on_line(line)
            with self._cond:
                sink.append(line)
                self._cond.notify_all()
        if sink is self.errors and not self.group:      # the project's own worker
            note_crashes(f"worker {self.name}", list(sink))
        with self._cond:
            self._streams_closed += 1
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    def option(self, name: str, default: str | None = None) -> str | None:
        """The value given to ``name`` on its command line (the last, if given twice)."""
        argv = self.options
        values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == name]
        return values[-1] if values else default

    # -- waiting --------------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[list[str]], T], timeout: float, what: str) -> T:
        """Wait until ``predicate(lines)`` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                lines = self.lines if self.output is None else self.output_lines()
                value = predicate(lines)
                if value:
                    return value
                if self._streams_closed == 2 and self.process.poll() is not None:
                    started = self.consuming_count() > 0
                    raise (WorkerExited if started else WorkerDidNotStart)(
                        f"worker {self.name} (pid {self.pid}) exited with code {self.process.returncode} "
                        f"before {what}; it printed {lines[-15:]!r}, stderr {self.errors[-5:]!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"worker {self.name} (pid {self.pid}): timed out after {timeout:g} s waiting "
                        f"for {what}; it printed {lines[-15:]!r}, stderr {self.errors[-5:]!r}, "
                        f"exit code {self.process.poll()}")
                # A file is read again every 0.2 s; lines read from a pipe notify the condition.
                polled = self.output is not None or self.events_path is not None
                self._cond.wait(min(remaining, 0.2 if polled else 0.5))

    def wait_for_line(self, text: str, timeout: float = 30, count: int = 1) -> bool:
        return self.wait_for(lambda lines: sum(text in line for line in lines) >= count, timeout,
                             f"{count} line(s) containing {text!r}")

    def wait_consuming(self, timeout: float = 30, count: int = 1) -> bool:
        return self.wait_for(lambda _lines: self.consuming_count() >= count, timeout,
                             f"consuming ({count} time(s))")

    def wait_received(self, body: str, timeout: float = 30) -> bool:
        return self.wait_for(lambda _lines: body in self.received(), timeout, f"task {body!r}")

    def wait_done(self, count: int, timeout: float = 60) -> bool:
        return self.wait_for(lambda _lines: self.done_count() >= count, timeout, f"{count} task(s) done")

    def wait_exit(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"worker {self.name} (pid {self.pid}) did not exit within {timeout:g} s; "
                               f"it printed {self.lines[-10:]!r}") from None

    # -- what it did ----------------------------------------------------------------------
    def events(self) -> list[Event]:
        """What it reported, in order: ("consuming", None, False), ("received", body, redelivered),
        ("done", body, False). The project's worker reports them in its own lines; another
        implementation writes them to its events file (docs/conformance.md)."""
        if self.events_path is None:
            return events_of(self.output_lines())
        try:
            with open(self.events_path, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return []
        return read_events(text)

    def deliveries(self) -> list[tuple[Any, bool]]:
        """[(body, redelivered)] in the order received."""
        return [(body, redelivered) for kind, body, redelivered in self.events() if kind == "received"]

    def received(self) -> list[Any]:
        return [body for body, _ in self.deliveries()]

    def finished(self) -> list[Any]:
        """Bodies of the tasks it did to the end (a Received line followed by its Done line)."""
        return [body for kind, body, _ in self.events() if kind == "done"]

    def consuming_count(self) -> int:
        """How often it started consuming: 1, plus one for each reconnect. For a worker that does
        not report it, ``consuming_probe``: the broker's view (the distinct consumers it listed)."""
        if self.consuming_probe is not None:
            return self.consuming_probe()
        return sum(kind == "consuming" for kind, _, _ in self.events())

    def done_count(self) -> int:
        return sum(kind == "done" for kind, _, _ in self.events())

    # -- signals --------------------------------------------------------------------------
    def signal(self, sig: int) -> None:
        """``sig`` to the worker. Another implementation's SIGKILL, SIGSTOP and SIGCONT go to its
        whole process group (a supervisor and its children die or freeze together); a request to
        stop (SIGTERM, SIGINT) goes to the process started, which tells its children."""
        if self.process.poll() is None:
            if self.group and sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL, observed: the process (the one started) ends by that signal, by the kernel's
        wait status; one that had exited before is not killed (FaultNotObserved)."""
        from workqueue.testing.nemesis import FaultNotObserved
        running = self.process.poll() is None
        self.signal(signal.SIGKILL)
        code = self.process.wait(30)
        if not running or code != -signal.SIGKILL:
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            raise FaultNotObserved(f"worker {self.name} was not killed: it ended with {how}"
                                   + ("" if running else ", before the kill"))

    def close(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
            self.process.wait(30)
        elif self.group:                    # its children may outlive it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        if self.events_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.events_path)


class WorkerPool:
    """The worker processes of one scenario, by name; close() kills any still running."""

    def __init__(self, url: str | Sequence[str], default_options: Sequence[str] = (),
                 env: dict[str, str] | None = None, on_line: Callable[[str], object] | None = None,
                 launch: Callable[..., WorkerProcess] | None = None):
        """``launch(name, url, options, on_line)``: starts each worker instead of the project's
        own (the conformance suite's worker under test)."""
        self.launch = launch
        self.url = url
        self.default_options = list(default_options)
        self.env = env
        self.on_line = on_line
        self.workers: dict[str, WorkerProcess] = {}

    def start(self, name: str, *options: str, url: str | Sequence[str] | None = None) -> WorkerProcess:
        all_options = ["--name", name, *self.default_options, *options]
        if self.launch is not None:
            worker = self.launch(name, url or self.url, all_options, self.on_line)
        else:
            worker = WorkerProcess(name, url or self.url, *all_options, env=self.env, on_line=self.on_line)
        self.workers[name] = worker
        return worker

    def __getitem__(self, name: str) -> WorkerProcess:
        return self.workers[name]

    def __iter__(self) -> Iterator[WorkerProcess]:
        return iter(self.workers.values())

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()


def process_states(pids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """{pid: (command name, state letter)} as /proc has them (R running, S sleeping, T stopped,
    Z zombie); a process that has ended is left out."""
    out: dict[int, tuple[str, str]] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/comm") as f:
                name = f.read().strip()
            out[pid] = (name, _stat(pid)[0])
        except (OSError, IndexError):
            continue
    return out


def descendants(pid: int) -> list[int]:
    """Pids of every process below ``pid``, read from /proc (a process that ends meanwhile is
    left out)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_stat(entry)[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out

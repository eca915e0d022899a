"""Jepsen's history: one append-only log of what a run did, and the files it is read from.

Every event is ``(time, kind, value)``, time from ``time.time()`` (one clock for the soak and
its workers, all on one machine), kind one of ``published``, ``confirmed``, ``done``,
``fault-start``, ``fault-end``. The counts the run loop asks for five times a second are kept
as events arrive; everything else (the checker's sets, the plot) is read from the log.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import threading
import time


@dataclasses.dataclass
class Window:
    """One fault: what, on which member, from when to when (equal for an instant fault)."""
    kind: str
    member: str
    start: float
    end: float
    note: str = ""
    observed: str = ""          # what the kernel, the engine or the broker showed as it struck
    unobserved: str = ""        # why its effect was not seen (the checker fails the run)


class History:
    def __init__(self, start: float | None = None):
        self.start = time.time() if start is None else start
        self.events: list[tuple[float, str, object]] = []
        self._lock = threading.Lock()
        self.published: dict[str, float] = {}         # body -> first publish
        self.confirmed: set[str] = set()
        self.done: collections.Counter[str] = collections.Counter()   # body -> times done
        self.windows: list[Window] = []

    def _add(self, at, kind, value):
        with self._lock:
            self.events.append((at, kind, value))

    def publish(self, bodies, at=None):
        at = time.time() if at is None else at
        for body in bodies:
            self._add(at, "published", body)
            self.published.setdefault(body, at)

    def confirm(self, body, at=None):
        self._add(time.time() if at is None else at, "confirmed", body)
        self.confirmed.add(body)

    def finish(self, body, at):
        self._add(at, "done", body)
        self.done[body] += 1

    def fault_start(self, kind, member, observed="") -> Window:
        now = time.time()
        window = Window(kind, member, now, now, observed=observed)
        self.windows.append(window)
        self._add(now, "fault-start", window)
        return window

    def fault_end(self, window: Window) -> None:
        window.end = time.time()
        self._add(window.end, "fault-end", window)

    def faults(self) -> collections.Counter[str]:
        """How many faults of each kind started."""
        return collections.Counter(w.kind for w in self.windows)

    def of(self, kind):
        """(time, value) of every event of ``kind``, in order."""
        with self._lock:
            return [(at, value) for at, k, value in self.events if k == kind]

    @property
    def unique_done(self) -> int:
        return len(self.done)


class DoneFiles:
    """What the workers recorded (``body time`` lines, one file per worker process), read
    incrementally into the history: a line still being written waits for its newline."""

    def __init__(self, directory):
        self.directory = directory
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}

    def refresh(self, history: History) -> History:
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
                if line:
                    body, _, at = line.decode(errors="replace").partition(" ")
                    try:
                        when = float(at)
                    except ValueError:
                        when = float("nan")           # a line without its time: counted, not timed
                    history.finish(body, when)
        return history

"""Jepsen's nemesis: one fault at a time, made on the harness's fault interface, which a
single broker and a 3-node cluster share (``fault_member``, ``crash``, ``stop_member``,
``recover``, ``pause_member``, ``resume_member``, ``partition``, ``heal``).

On a cluster a node fault ends in the background (the other nodes carry the work meanwhile):
a crashed or stopped node rejoins once the others have done more work; a paused or cut-off one
comes back after ``fault_seconds``. A single broker's fault ends before ``invoke`` returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from soak.history import History, Window
from workqueue.testing import wait_until


class Nemesis:
    def __init__(self, target, vhost: str, queue: str, workers, history: History, rng,
                 fault_seconds: float, n: int, confirmed: Callable[[], int]):
        self.target = target
        self.vhost = vhost
        self.queue = queue
        self.workers = workers
        self.history = history
        self.rng = rng
        self.fault_seconds = fault_seconds
        self.n = n
        self.confirmed = confirmed
        self.problems: list[str] = []      # what went wrong while a fault ran (the checker reports it)
        self.last = "start"                # the last fault, for messages
        self._ending: threading.Thread | None = None

    def invoke(self, kind: str) -> Window:
        """Make one fault of ``kind``; return its window (its end is set when it ends)."""
        self.last = f"{kind} at {self.history.unique_done} tasks processed"
        if kind == "kill":
            return self.kill()
        member = self.target.fault_member(self.vhost, self.queue)   # one broker, or the queue's leader node
        window = self.history.fault_start(kind, self.label(member))
        getattr(self, kind)(member, window)
        return window

    def returning(self) -> bool:
        """A node is still on its way back: no other broker fault until it is."""
        return self._ending is not None and self._ending.is_alive()

    # -- the faults: one method each ------------------------------------------------------
    def kill(self) -> Window:
        self.workers.kill_one(self.rng)
        window = self.history.fault_start("kill", "a worker")
        self.history.fault_end(window)
        return window

    def crash(self, member, window):
        self.target.crash(member)
        self._end(self._rejoin, member, window)

    def restart(self, member, window):
        self.target.stop_member(member)
        self._end(self._rejoin, member, window)

    def pause(self, member, window):
        self.target.pause_member(member)
        self._end(self._hold, member, window, self.target.resume_member)

    def partition(self, member, window):
        self.target.partition(member)
        self._end(self._hold, member, window, self.target.heal)

    # -- how a fault ends -----------------------------------------------------------------
    def _end(self, how, member, window, *args):
        """End the fault with ``how``: in the background while other nodes carry the work."""
        if self.target.can_work_without(member):
            self._ending = threading.Thread(target=how, args=(member, window, *args), daemon=True)
            self._ending.start()
        else:
            how(member, window, *args)

    def _rejoin(self, member, window):
        """A cluster's node stays down until the others have done more work, then rejoins; a
        lone broker starts again at once (no work goes on without it)."""
        if self.target.can_work_without(member):
            done_then = self.history.unique_done
            try:
                wait_until(lambda: self.history.unique_done >= min(done_then + max(self.n // 100, 1),
                                                                   self.confirmed()),
                           60, f"work to go on without {member.node_name}")
            except TimeoutError as exc:
                self.problems.append(str(exc))
        self.target.recover(member)
        self.history.fault_end(window)

    def _hold(self, member, window, end):
        """A pause or a partition lasts ``fault_seconds`` (long enough for the quorum queue to
        elect another leader: the fault's length, not a synchronisation), then ends."""
        threading.Event().wait(self.fault_seconds)
        end(member)
        self.history.fault_end(window)
        if self.target.can_work_without(member):
            # Asked of the other nodes: the faulted node's own view can be stale (a paused
            # node named itself leader right after its pause).
            try:
                leader = self.target.wait_new_leader(self.vhost, self.queue, member, timeout=30)
                window.note = f"leader after: {leader.node_name}"
            except Exception as exc:  # the note is for the reader only
                window.note = f"leader after: none named by the other nodes ({type(exc).__name__})"

    def label(self, member) -> str:
        """``node 2 (rabbit@host2)`` in a cluster, ``the broker`` alone (the plot keeps the first words)."""
        if len(self.target.members) == 1:
            return "the broker"
        return f"node {self.target.members.index(member) + 1} ({member.node_name})"

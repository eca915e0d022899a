"""Jepsen's nemesis, as the soak schedules it: one fault at a time, made and observed by the
harness's nemesis (workqueue.testing.nemesis, the one the steps use), on the fault interface a
single broker and a 3-node cluster share.

Each fault's window in the history carries what was observed as it struck, or why nothing was
(the checker fails the run then). On a cluster a broker fault strikes the node that leads the
queue at that moment, and ends in the background while the other nodes carry the work: a
crashed or stopped node rejoins once the others have done more work; a paused or cut-off one
comes back after ``fault_seconds``; the other nodes must name another leader meanwhile. A
single broker's fault ends before ``invoke`` returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from soak.history import History, Window
from workqueue.testing import nemesis as harness
from workqueue.testing import wait_until

#: How long the other nodes have to name a new leader after the leader's fault.
LEADER_SECONDS = 60


class Nemesis:
    def __init__(self, target, vhost: str, queue: str, workers, history: History, rng,
                 fault_seconds: float, n: int, confirmed: Callable[[], int]):
        self.target = target
        self.faults = harness.Nemesis(target)
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
        member = self.target.fault_member(self.vhost, self.queue)
        window = self.history.fault_start(kind, self.label(member))
        try:
            member, observation = self.faults.strike_leader(
                {"crash": "crash", "restart": "stop", "pause": "pause", "partition": "partition"}[kind],
                self.vhost, self.queue)
            window.member = self.label(member)
            window.observed = observation.seen
        except harness.FaultNotObserved as exc:
            window.unobserved = str(exc)
            if not exc.struck:
                self.history.fault_end(window)
                return window
        getattr(self, kind)(member, window)
        return window

    def returning(self) -> bool:
        """A node is still on its way back: no other broker fault until it is."""
        return self._ending is not None and self._ending.is_alive()

    # -- the faults' ends: one method each ------------------------------------------------
    def kill(self) -> Window:
        window = self.history.fault_start("kill", "a worker")
        try:
            victim = self.workers.kill_one(self.rng)
            window.member = f"worker {victim.name}"
            window.observed = f"pid {victim.pid} ended by SIGKILL (wait status: signal 9)"
        except harness.FaultNotObserved as exc:
            window.unobserved = str(exc)
        self.history.fault_end(window)
        return window

    def crash(self, member, window):
        self._end(self._rejoin, member, window)

    def restart(self, member, window):
        self._end(self._rejoin, member, window)

    def pause(self, member, window):
        self._end(self._hold, member, window, self.target.resume_member)

    def partition(self, member, window):
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
        """A cluster's node stays down until another node leads and the others have done more
        work, then rejoins; a lone broker starts again at once (no work goes on without it)."""
        if self.target.can_work_without(member):
            self._leader_moved(member, window)
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
            self._leader_moved(member, window)

    def _leader_moved(self, member, window):
        """The other nodes name another leader (the faulted node's own view can be stale: a
        paused node named itself leader right after its pause); if none does in time, the fault
        had no effect on the queue's leadership, and the checker fails the run."""
        try:
            leader = self.target.wait_new_leader(self.vhost, self.queue, member, timeout=LEADER_SECONDS)
            window.note = f"leader after: {leader.node_name}"
        except Exception as exc:
            if not window.unobserved:
                window.unobserved = (f"no node other than {member.node_name} named a new leader of "
                                     f"{self.queue!r} within {LEADER_SECONDS} s ({type(exc).__name__})")

    def label(self, member) -> str:
        """``node 2 (rabbit@host2)`` in a cluster, ``the broker`` alone (the plot keeps the first words)."""
        if len(self.target.members) == 1:
            return "the broker"
        return f"node {self.target.members.index(member) + 1} ({member.node_name})"

"""Jepsen's nemesis for the steps and the soak alike: each fault is made on the harness's fault
interface (``Target``) and observed as it strikes, in what the kernel, the Docker engine or the
broker reports; a fault whose effect is not seen raises FaultNotObserved, saying what was seen.

- a crash: the broker's process ended by SIGKILL (the kernel's wait status, or the engine's exit
  code 137), with no graceful shutdown in its log since the fault began;
- a graceful stop: its log says it was asked to stop, and it was not killed;
- a pause: every process of the node's VM stopped (state ``T`` in /proc), or the container
  ``paused`` by the engine;
- a partition: the node still running (not frozen, not gone), and a TCP connection to it, from
  this machine (where the clients are) and from inside each other node's network, times out or
  finds no route: it is not refused and not accepted;
- a fault on the leader (``strike_leader``): the node struck is the one that leads the queue
  at that moment, read just before; that afterwards another node leads is the scenario's own
  Then, and the soak's checker's;
- a worker kill (processes.WorkerProcess.kill): its process ended by SIGKILL.

Each observation is kept in ``observations`` (the soak's history and the steps' reports take
them from there).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import errno
import re
import socket
import time
from typing import Any

#: What RabbitMQ logs when it shuts down gracefully (SIGTERM, rabbitmqctl stop, docker stop):
#: seen on 3.10.8, 4.0.5 and 4.3.6. A crash (SIGKILL) writes none of it.
SHUTDOWN = re.compile(r"SIGTERM received|asked to stop|Gracefully halting|stopped TCP listener|"
                      r"Stopping message store|Stopping RabbitMQ applications|shutting down")
#: Seconds every process of a paused node has to reach the stopped state.
STOP_SECONDS = 5.0
#: Seconds a connection attempt to a cut-off node is given before it counts as timed out.
PROBE_SECONDS = 2.0


class FaultNotObserved(AssertionError):
    """A fault was made and its effect was not seen (or another effect was): the step or the
    soak that made it fails, saying what it saw. ``struck``: False when the fault was not made
    at all (aimed at a node that does not lead the queue)."""

    def __init__(self, message: str, struck: bool = True):
        super().__init__(message)
        self.struck = struck


@dataclasses.dataclass
class Observation:
    """One fault as it struck: what, on what, what was seen, when."""

    fault: str              # crash, stop, pause, partition, kill
    target: str             # a node name, "the broker", or a worker's name
    seen: str               # what the kernel, the engine or the broker reported
    at: float = dataclasses.field(default_factory=time.time)
    leader: str | None = None   # a fault on the leader: the node that led the queue as it struck

    def __str__(self) -> str:
        led = " (leading the queue as it struck)" if self.leader else ""
        return f"{self.fault} of {self.target}{led}: {self.seen}"


def probe(host: str, port: int, timeout: float = PROBE_SECONDS) -> str:
    """A TCP connection attempt from this process: ``connected``, ``refused``, ``timed out`` or
    ``unreachable`` (no route to the host)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(timeout)
        try:
            code = s.connect_ex((host, port))
        except TimeoutError:
            return "timed out"
        except OSError as exc:
            code = exc.errno or -1
    return describe_connect(code)


def describe_connect(code: int) -> str:
    if code == 0:
        return "connected"
    if code == errno.ECONNREFUSED:
        return "refused"
    if code in (errno.EAGAIN, errno.ETIMEDOUT, errno.EINPROGRESS):
        return "timed out"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return f"failed ({errno.errorcode.get(code, code)})"


#: What a partition must show on every path to the node.
CUT_OFF = ("timed out", "unreachable")


class Nemesis:
    """The faults of one target (a broker or a cluster), each observed as it strikes."""

    def __init__(self, target: Any):
        self.target = target
        self.observations: list[Observation] = []

    def name(self, member: Any) -> str:
        return "the broker" if len(self.target.members) == 1 else member.node_name

    def _seen(self, observation: Observation) -> Observation:
        self.observations.append(observation)
        return observation

    # -- the faults ---------------------------------------------------------------------------
    @staticmethod
    def _ended(member: Any, end: Any) -> tuple[int | None, str, list[str]]:
        """End ``member`` with ``end``; how its run ended (exit_status) and the shutdown lines its
        log gained meanwhile."""
        mark = member.log_mark()
        end(member)
        code, words = member.exit_status()
        return code, words, [line for line in member.log_since(mark).splitlines() if SHUTDOWN.search(line)]

    def crash(self, member: Any) -> Observation:
        code, words, shutdown = self._ended(member, self.target.crash)
        if code != 137 or shutdown:
            said = f"; its log: {shutdown[0].strip()[:160]!r}" if shutdown else ""
            raise FaultNotObserved(f"the crash of {self.name(member)} was not a SIGKILL: {words}{said}")
        return self._seen(Observation("crash", self.name(member), f"{words}; no shutdown in its log"))

    def stop(self, member: Any) -> Observation:
        code, words, shutdown = self._ended(member, self.target.stop_member)
        if code == 137 or not shutdown:
            raise FaultNotObserved(f"the graceful stop of {self.name(member)} was not seen: {words}; "
                                   f"{'no' if not shutdown else 'a'} shutdown in its log")
        said = re.sub(r"^\S+ \S+ \[\w+\] <[^>]*> ", "", shutdown[0].strip())[:80]    # less its time and pid
        return self._seen(Observation("stop", self.name(member), f"{words}; its log: {said!r}"))

    def pause(self, member: Any) -> Observation:
        """A signal is delivered when its process is next scheduled: a process the pause caught
        running (state R) stops a moment later, so its state is read until every one is
        stopped, for at most STOP_SECONDS."""
        self.target.pause_member(member)
        seen = [member.run_state()]
        deadline = time.monotonic() + STOP_SECONDS
        while seen[-1][0] != "frozen" and time.monotonic() < deadline:
            time.sleep(0.05)
            seen.append(member.run_state())
        state, words = seen[-1]
        if state != "frozen":
            raise FaultNotObserved(f"the pause of {self.name(member)} froze it not: {words}")
        return self._seen(Observation("pause", self.name(member), words))

    def resume(self, member: Any) -> None:
        self.target.resume_member(member)

    def partition(self, member: Any) -> Observation:
        self.target.partition(member)
        return self._seen(Observation("partition", self.name(member), self.cut_off(member)))

    def heal(self, member: Any) -> None:
        self.target.heal(member)

    def recover(self, member: Any) -> None:
        self.target.recover(member)

    def cut_off(self, member: Any) -> str:
        """What shows that ``member`` is cut off: it runs, and no connection reaches it, from here
        or from the other nodes' networks; FaultNotObserved otherwise."""
        state, words = member.run_state()
        host, port = member.network_address()
        others = [m for m in self.target.members if m is not member]
        with concurrent.futures.ThreadPoolExecutor(1 + len(others)) as pool:
            here = pool.submit(probe, host, port)
            there = {m.node_name: pool.submit(self.target.probe_from, m, host, port) for m in others}
            paths = {"this machine": here.result(), **{n: f.result() for n, f in there.items()}}
        seen = f"{words}; a connection to {host}:{port} " + ", ".join(
            f"from {where} {outcome}" for where, outcome in paths.items())
        if state != "running" or any(outcome not in CUT_OFF for outcome in paths.values()):
            raise FaultNotObserved(f"the partition of {self.name(member)} did not cut off a running node: {seen}")
        return seen

    def stop_replica(self, member: Any, vhost: str, queue: str) -> Observation:
        """Stop the Ra server of quorum queue ``queue`` on ``member``: RabbitMQ must then list the
        queue as down (its record kept, nothing to take a consumer)."""
        state = member.quorum_replica(queue, vhost, "stop")
        if state != "down":
            raise FaultNotObserved(f"the stop of {queue!r}'s replica on {self.name(member)} was not seen: "
                                   f"list_queues gives it state {state!r}, not 'down'")
        return self._seen(Observation("replica stop", f"{queue!r} on {self.name(member)}",
                                      "list_queues gives it state 'down'"))

    def start_replica(self, member: Any, vhost: str, queue: str) -> None:
        member.quorum_replica(queue, vhost, "restart")

    def strike_leader(self, kind: str, vhost: str, queue: str) -> tuple[Any, Observation]:
        """Make fault ``kind`` (crash, stop, pause, partition) on the node that leads ``queue``
        now: the target's choice (``fault_member``), checked against the leader the management
        API names just before the strike. Returns the node and the observation."""
        member = self.target.fault_member(vhost, queue)
        leader = None
        if len(self.target.members) > 1:
            leader = self.target.leader(vhost, queue)
            if leader != member.node_name:
                raise FaultNotObserved(f"a fault on the leader of {queue!r} was aimed at {member.node_name}, "
                                       f"while {leader} leads it", struck=False)
        observation = getattr(self, kind)(member)
        observation.leader = leader
        return member, observation

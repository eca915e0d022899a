"""Where a command's CPU goes, by kind of process: the budget of a `make test` run.

    python -m bench.cpu [--interval S] [--cores N] -- COMMAND [ARG...]

Runs COMMAND, reads every process of the machine from /proc while it runs, and prints one table:
for each kind of process (RabbitMQ nodes, rabbitmqctl's Erlang VMs, the test processes, the
workers...) how many ran and the CPU they used, then the whole machine's CPU over the run
(/proc/stat, exact), the wall time, and the floor those seconds of CPU put under the wall time on
this machine's cores, whatever the schedule: CPU / cores. A RabbitMQ node counts once per boot (a
restart is a new VM), so the table also says how many boots the run made and their CPU.

A process's CPU is read from /proc/PID/stat each --interval (0.25 s): one that ends between two
reads loses its last interval, so the kinds add up to a little less than the machine's total;
the difference is printed as "not attributed" (with the kernel's own threads). Run it on a machine
doing nothing else: every process is counted, the command's or not. Exit status: the command's
(2 for bad usage or a command that is not there). A Ctrl-C or a SIGTERM ends the command its own
way; the table is printed once it has ended.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

TICK = os.sysconf("SC_CLK_TCK")

#: (kind, what it is): the rows of the table, in this order; ``kind_of`` picks one.
KINDS = [
    ("rabbitmq", "RabbitMQ nodes (beam.smp running `rabbit boot`), one per boot"),
    ("erlang-cli", "rabbitmqctl and the other CLI tools (an Erlang VM each call)"),
    ("erlang-helpers", "epmd, inet_gethost, erl_child_setup"),
    ("pytest", "the test processes (pytest and its xdist workers)"),
    ("workqueue-worker", "workqueue's worker processes"),
    ("python", "other Python processes (the soak, the kit's installs, the implementations)"),
    ("jvm", "Java processes"),
    ("node.js", "Node.js processes"),
    ("docker", "the Docker engine (dockerd, containerd, shims, runc)"),
    ("browser", "chromium"),
    ("other", "everything else started during the run (shells, pip, compilers...)"),
]


def kind_of(argv: Sequence[str]) -> str:
    """The kind of a process, from its command line (``/proc/PID/cmdline`` split on NULs)."""
    if not argv:
        return "other"
    exe = os.path.basename(argv[0])
    line = " ".join(argv)
    if exe.startswith("beam"):
        if "rabbit boot" in line or ("-s rabbit" in line and "escript" not in line):
            return "rabbitmq"
        if "escript" in line or "rabbitmqcli" in line:
            return "erlang-cli"
        return "other"
    if exe in ("epmd", "inet_gethost", "erl_child_setup", "heart"):
        return "erlang-helpers"
    if exe.startswith("python"):
        if "workqueue.worker" in line:
            return "workqueue-worker"
        if "pytest" in line or "sys.stdin.readline()" in line:     # xdist's workers: execnet's bootstrap
            return "pytest"
        return "python"
    if exe == "pytest":
        return "pytest"
    if exe == "java":
        return "jvm"
    if exe in ("node", "nodejs"):
        return "node.js"
    if exe in ("dockerd", "containerd", "runc", "docker-proxy", "docker-init") or exe.startswith("containerd-shim"):
        return "docker"
    if "chrom" in exe:
        return "browser"
    return "other"


@dataclass
class Process:
    argv: list[str]
    first: float            # CPU seconds when first seen (0 for a process started during the run)
    last: float
    comm: str
    before: bool            # it was running when the run began

    @property
    def used(self) -> float:
        return self.last - self.first


@dataclass
class Sampler:
    """Every process of the machine, read each ``interval`` until stopped."""
    interval: float = 0.25
    series: IO[str] | None = None       # a line per read: seconds since the start, the machine's CPU s
    processes: dict[tuple[int, int], Process] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self, during: bool) -> None:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                comm, fields = read_stat(name)
                cpu = (int(fields[11]) + int(fields[12])) / TICK
                key = (int(name), int(fields[19]))          # pid and start time: a pid is reused
                known = self.processes.get(key)
                if known is None or known.comm != comm:      # new, or it exec'd since
                    with open(f"/proc/{name}/cmdline", "rb") as f:
                        argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
                    if known is None:
                        self.processes[key] = Process(argv, cpu if not during else 0.0, cpu, comm, not during)
                        continue
                    known.argv, known.comm = argv, comm
                known.last = max(known.last, cpu)
            except (OSError, ValueError, IndexError):
                continue                                     # it ended while being read

    def run(self) -> None:
        started, before = time.monotonic(), machine_cpu()
        while not self._stop.wait(self.interval):
            self.sample(during=True)
            if self.series is not None:
                self.series.write(f"{time.monotonic() - started:.2f} {machine_cpu() - before:.2f}\n")
                self.series.flush()

    def stop(self) -> None:
        self._stop.set()


def read_stat(pid: int | str) -> tuple[str, list[str]]:
    """A process's command name and the fields of /proc/PID/stat after it (state, ppid, ...; the
    name is cut at its last ")", as it may hold spaces and parentheses)."""
    with open(f"/proc/{pid}/stat") as f:
        head, rest = f.read().rsplit(")", 1)
    return head.split("(", 1)[1], rest.split()


def machine_cpu() -> float:
    """CPU seconds the whole machine has used since boot (every core, idle and iowait excluded)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    busy = sum(values[:8]) - values[3] - values[4]           # all but idle and iowait
    return busy / TICK


def table(sampler: Sampler, own: tuple[int, int], total: float, wall: float, cores: int) -> str:
    used: dict[str, float] = {kind: 0.0 for kind, _ in KINDS}
    count: dict[str, int] = {kind: 0 for kind, _ in KINDS}
    boots: list[float] = []
    mine = 0.0
    for key, proc in sampler.processes.items():
        if key == own:
            mine = proc.used
            continue
        if proc.before and proc.used <= 0:
            continue                                         # there before, and idle through it
        kind = kind_of(proc.argv)
        used[kind] += proc.used
        count[kind] += 1
        if kind == "rabbitmq":
            boots.append(proc.used)
    def share(seconds: float) -> str:
        return f"{seconds / total:>8.0%}" if total > 0 else f"{'-':>8}"      # a run too short to count

    rows = [f"{'kind':<18}{'processes':>10}{'CPU s':>10}{'share':>8}  what"]
    for kind, what in KINDS:
        if count[kind]:
            rows.append(f"{kind:<18}{count[kind]:>10}{used[kind]:>10.1f}{share(used[kind])}  {what}")
    rows.append(f"{'this tool':<18}{1:>10}{mine:>10.1f}{share(mine)}  its reads of /proc")
    attributed = sum(used.values()) + mine
    rows.append(f"{'not attributed':<18}{'':>10}{total - attributed:>10.1f}{share(total - attributed)}  "
                "kernel threads, and what ended between two reads")
    rows.append(f"{'the machine':<18}{'':>10}{total:>10.1f}{share(total)}  /proc/stat over the run")
    rows.append("")
    if boots:
        boots.sort()
        rows.append(f"RabbitMQ: {len(boots)} nodes booted, {sum(boots):.1f} s of CPU in all "
                    f"(least {boots[0]:.1f} s, median {boots[len(boots) // 2]:.1f} s each: a boot and its life)")
    rows.append(f"wall {wall:.1f} s on {cores} cores: {cores * wall:.1f} CPU s available, "
                f"{total / (cores * wall) if wall > 0 else 0:.0%} used; "
                f"the floor these CPU seconds put under the wall time: {total / cores:.1f} s")
    return "\n".join(rows)


def _run(command: Sequence[str]) -> int:
    """Run ``command`` to its end and return its exit status. A Ctrl-C reaches it from the terminal
    as it would without this tool, and a SIGTERM sent to this tool is passed on to it: either way
    the command ends its own way (a test run stops its brokers) while this tool waits for it."""
    process = subprocess.Popen(command)
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: process.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between reads of /proc (0.25)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores to count (this machine's)")
    parser.add_argument("--series", metavar="FILE", help="also write, at each read, the seconds since the start "
                        "and the machine's CPU seconds since then (to cut a long run into its stages)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given: python -m bench.cpu -- make test BROKER=node")
    if args.interval <= 0:
        parser.error(f"--interval must be above 0 (got {args.interval})")
    try:
        series = open(args.series, "w") if args.series else None
    except OSError as exc:
        parser.error(f"cannot write --series {args.series}: {exc.strerror}")
    sampler = Sampler(args.interval, series)
    sampler.sample(during=False)                             # what ran before: only its growth counts
    own = (os.getpid(), int(read_stat("self")[1][19]))
    before, started = machine_cpu(), time.monotonic()
    thread = threading.Thread(target=sampler.run, name="cpu-sampler", daemon=True)
    thread.start()
    try:
        status = _run(command)
    except FileNotFoundError:
        print(f"python -m bench.cpu: no such command: {command[0]}", file=sys.stderr)
        return 2
    finally:
        sampler.stop()
        thread.join()
        if series is not None:
            series.close()
    sampler.sample(during=True)
    wall, total = time.monotonic() - started, machine_cpu() - before
    print(f"\nCPU of `{' '.join(command)}` (exit status {status})")
    print(table(sampler, own, total, wall, args.cores))
    return status


if __name__ == "__main__":
    sys.exit(main())

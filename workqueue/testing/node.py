"""Backend ``node``: Debian's rabbitmq-server as a private process (pytest-rabbitmq's executor).

Everything lives under one temporary directory: data (mnesia), logs, config, the Erlang cookie
(HOME), and a private epmd on its own loopback port, so several brokers can run side by side
and nothing is left behind. Starting again on the same data after a kill is crash recovery.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workqueue.testing import debian
from workqueue.testing.base import COMMON_CONF, Broker, BrokerError, NoBroker, free_port, port_open, wait_until

SERVER = os.environ.get("WORKQUEUE_RABBITMQ_SERVER", "/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = os.environ.get("WORKQUEUE_RABBITMQCTL", "/usr/lib/rabbitmq/bin/rabbitmqctl")
EPMD_CANDIDATES = ("/usr/bin/epmd", "/usr/lib/erlang/bin/epmd")


#: In a node's directory: the pid of the process that made it (its owner).
OWNER_FILE = "owner.pid"
DIR_PREFIX = "workqueue-node-"


def reap_orphan_dirs(parent: str | os.PathLike[str] | None = None, prefix: str = DIR_PREFIX) -> list[Path]:
    """Remove the directories (``prefix``: of throwaway nodes, or of soaks) whose owner process
    is gone and whose node, if any, is not running (an owner killed outright could not remove its
    own). Returns the paths."""
    from workqueue.testing.processes import alive
    removed: list[Path] = []
    for path in Path(parent or tempfile.gettempdir()).glob(prefix + "*"):
        try:
            owner = int((path / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue                    # being made (no owner yet), or not one of ours
        if alive(owner):
            continue
        node: int | None
        try:
            node = int((path / "rabbit.pid").read_text())
        except (OSError, ValueError):
            node = None
        if node and alive(node):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def node_available() -> bool:
    return os.path.exists(SERVER) and os.path.exists(CTL)


def require_node() -> None:
    if not node_available():
        raise NoBroker(f"--broker=node needs Debian's rabbitmq-server: {SERVER} not found "
                       "(apt-get install rabbitmq-server)")


_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")
#: Every node executor of this process: ended at its exit if still running (mirakuru's exit hook
#: finds processes by this process's pid in their mark, which ours no longer hold).
_EXECUTORS: weakref.WeakSet[Any] = weakref.WeakSet()


@atexit.register
def _kill_running_nodes() -> None:
    for executor in list(_EXECUTORS):
        if executor.owner != os.getpid():
            continue                    # a forked child's copy of the set: its parent's nodes
        process = executor.process
        if process is not None and process.poll() is None:
            try:
                executor.kill(wait=True, sig=signal.SIGKILL)
            except Exception:
                process.kill()


@functools.cache
def _executor_class() -> Any:
    """pytest-rabbitmq's executor with our environment (imported on first use: the test extra)."""
    from mirakuru.exceptions import ProcessExitedWithError
    from pytest_rabbitmq.factories.executor import RabbitMqExecutor

    class _Executor(RabbitMqExecutor):
        """RabbitMqExecutor with the extra environment a private, loopback-only node needs."""

        def __init__(self, extra_env: dict[str, str], console_log: Any, **kwargs: Any):
            super().__init__(**kwargs)
            # mirakuru marks the process with mirakuru_uuid="<our pid>:<uuid4>", and every
            # process that imported it, as it exits, SIGKILLs each process on the machine whose
            # mirakuru_uuid *contains* its own pid (mirakuru 3.1.0, base.cleanup_subprocesses:
            # ``env_value in penv.get(env_name, "")``): a test process of pid 442 ending killed
            # the booting node of the process of pid 20442 (CI, 2026-12-07: a mutant row's
            # broker "failed to start", its log cut off mid-boot). No digit in the mark, so no
            # pid matches it; this module's own exit hook (below) ends what mirakuru's did.
            self._uuid = "workqueue-" + secrets.token_hex(16).translate(_NO_DIGITS)
            self.owner = os.getpid()
            _EXECUTORS.add(self)
            self._envvars.update(extra_env)     # ours win over RabbitMqExecutor's plugin file and log base
            # The console (boot banner, config errors) goes to a file: a pipe nobody reads would
            # eventually block the broker.
            self._stdout = console_log
            self._stderr = subprocess.STDOUT

        def check_subprocess(self) -> bool:
            # rabbitmq-server exits 0 when its boot fails; mirakuru only gives up on a non-zero
            # exit and would wait for the port until the timeout.
            if self.process is not None and self.process.poll() == 0:
                raise ProcessExitedWithError(self, 0)
            return super().check_subprocess()

    return _Executor


def listening_sockets() -> set[tuple[str, int]]:
    """(address, port) of every TCP socket listening on this machine (from /proc/net)."""
    found: set[tuple[str, int]] = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(table) as f:
                rows = list(f)[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] != "0A":                      # LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, raw), int(port, 16)))
    return found


class Epmd:
    """A private Erlang port mapper on its own loopback port (one per node, or one per cluster:
    clustered nodes find each other through the same epmd)."""

    def __init__(self, port: int | None = None, address: str = "127.0.0.1", prefix: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        #: where it listens (comma-separated), and the command prefix that runs it in a node's
        #: network namespace (netns.Lan.exec_prefix; empty: this machine's namespace)
        self.address = address
        self.prefix = list(prefix)
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()       # a cluster's nodes start in parallel: one epmd only

    def ensure(self) -> None:
        """Start it unless it runs, and wait until it listens (a node that finds no epmd starts
        its own ``epmd -daemon``)."""
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                return
            epmd = next((p for p in EPMD_CANDIDATES if os.path.exists(p)), shutil.which("epmd"))
            if epmd is None:
                raise NoBroker("epmd not found (it comes with erlang-base, a dependency of rabbitmq-server)")
            process = self.process = subprocess.Popen(
                [*self.prefix, epmd, "-port", str(self.port), "-address", self.address],
                env={**os.environ, "ERL_EPMD_ADDRESS": self.address},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            host = self.address.split(",")[-1]
            wait_until(lambda: port_open(self.port, host) or process.poll() is not None, 30,
                       f"epmd to listen on {host}:{self.port}", 0.02)
            if process.poll() is not None:
                raise BrokerError(f"epmd could not listen on {host}:{self.port} (exit {process.returncode})")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        # A node or rabbitmqctl that could not reach this epmd in time (a loaded machine) starts
        # ``epmd -daemon`` on the same private port, which outlives everything: end those too.
        for pid in self.strays():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def strays(self) -> list[int]:
        """Pids of epmd processes, other than the one this object runs, on its private port in
        its network namespace: started with ``-port <port>`` or with ERL_EPMD_PORT=<port> in
        their environment (the epmds of a namespaced cluster share one port, one per namespace)."""
        port = str(self.port).encode()
        mine = b"ERL_EPMD_PORT=" + port
        found: list[int] = []
        netns = _netns_inode(self.prefix)
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or (self.process is not None and int(entry) == self.process.pid
                                       and self.process.poll() is None):
                continue
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino != netns:
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                if b"epmd" not in argv[0]:
                    continue
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
            except OSError:
                continue
            ported = any(a == b"-port" and b == port for a, b in zip(argv, argv[1:]))
            if ported or mine in environ:
                found.append(int(entry))
        return found


def _netns_inode(prefix: Sequence[str]) -> int:
    """The inode of the network namespace a command prefix (``ip netns exec <name>``) runs in;
    without one, this process's own."""
    if len(prefix) >= 4 and prefix[-3:-1] == ["netns", "exec"]:
        return os.stat(f"/run/netns/{prefix[-1]}").st_ino
    return os.stat("/proc/self/ns/net").st_ino


_ERROR_LINE = re.compile(r"\[(error|critical|alert|emergency)\]|BOOT FAILED|^Error( during startup)?:|"
                         r"eaddrinuse|already_used|\{error,")


_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:.]+(\+\d\d:\d\d)? (\[\w+\] )?<[\d.]+> ")


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def first_error(*logs: list[str]) -> str:
    """The first line that says an error (RabbitMQ's [error] and worse, BOOT FAILED, a listener's
    eaddrinuse) in the first of ``logs`` that has one, with the two lines after it (the reason
    follows BOOT FAILED on the console), without their time stamps and process ids, so that a
    report cut short still shows the reason; "no error logged" when none has one."""
    for lines in logs:
        for i, line in enumerate(lines):
            if _ERROR_LINE.search(line):
                said = (_LOG_PREFIX.sub("", x).strip() for x in lines[i:i + 3])
                return " ".join(x for x in said if x and set(x) != {"="})[:400]
    return "no error logged"


class NodeBroker(Broker):
    """One private rabbitmq-server node.

    ``epmd`` and ``cookie`` are given by a NodeCluster so that its nodes can find and trust
    each other; a lone node has its own epmd and lets RabbitMQ make a cookie.
    """

    kind = "node"

    def __init__(self, *, base_dir: str | os.PathLike[str] | None = None, node_name: str | None = None,
                 epmd: Epmd | None = None, cookie: str | None = None, host: str = "127.0.0.1",
                 prefix: Sequence[str] = (), **kwargs: Any):
        require_node()
        super().__init__(**kwargs)
        # A node of a namespaced cluster (netns.Lan): its own address, its programs started
        # through ``prefix`` (``ip netns exec <namespace>``), a long node name (name@address).
        self.host = host
        self.prefix = list(prefix)
        longname = "." in (node_name or "").partition("@")[2]
        self._own_dir = base_dir is None
        if self._own_dir:
            reap_orphan_dirs()
        self.base = Path(base_dir or tempfile.mkdtemp(prefix=DIR_PREFIX))
        if self._own_dir:
            (self.base / OWNER_FILE).write_text(str(os.getpid()))
        self.dist_port = free_port()
        self._own_epmd = epmd is None
        self.epmd = epmd or Epmd()
        self.epmd_port = self.epmd.port
        self.node_name = node_name or f"wq{self.port}@localhost"
        for sub in ("home", "log", "mnesia"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        if cookie:
            cookie_file = self.base / "home" / ".erlang.cookie"
            cookie_file.write_text(cookie)
            os.chmod(cookie_file, 0o400)
        self.log_file = self.base / "log" / f"{self.node_name}.log"
        interface = "{" + self.host.replace(".", ",") + "}"
        self._write_config()
        self.env = {
            "HOME": str(self.base / "home"),
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbit.pid"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": self.epmd.address,
            "ERL_CRASH_DUMP_SECONDS": "0",      # a failed boot exits at once
            "ERL_CRASH_DUMP": str(self.base / "log" / "erl_crash.dump"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-kernel inet_dist_use_interface {interface}" + self.erl_args(),
            "RABBITMQ_CTL_ERL_ARGS": f"-kernel inet_dist_use_interface {interface}",
        }
        if longname:
            self.env["RABBITMQ_USE_LONGNAME"] = "true"
        self.console_log = self.base / "log" / "console.log"
        self._console = open(self.console_log, "ab")
        self._executor = _executor_class()(
            self.env, self._console, command=shlex.join([*self.prefix, SERVER]), host=self.host, port=self.port,
            distribution_port=self.dist_port, rabbit_ctl=CTL, logpath=self.base / "log",
            path=self.base, plugin_path=self.base, node_name=self.node_name)
        self._executor._timeout = self.startup_timeout

    @property
    def package(self) -> str | None:
        """This machine's rabbitmq-server package (dpkg), which the node runs."""
        return debian.installed_package()

    def _write_config(self) -> None:
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.host}:{self.port}\n"
            f"management.tcp.ip = {self.host}\n"
            f"management.tcp.port = {self.management_port}\n"
            f"default_user = {self.username}\n"
            f"default_pass = {self.password}\n"
            f"default_user_tags.administrator = true\n"
            f"loopback_users = none\n"
            f"log.file.level = info\n"
            + COMMON_CONF + self.restoring_conf() + (self.extra_conf or ""))
        os.chmod(self.base / "rabbitmq.conf", 0o600)
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")

    # -- hooks ----------------------------------------------------------------------------
    def _start(self) -> None:
        self.epmd.ensure()
        try:
            self._executor.start()
        except Exception as exc:
            # Its exit status as the boot left it, before a boot that outlived the wait is killed
            # here (that kill's own status would say nothing of the boot).
            process = self._executor.process
            code = process.poll() if process is not None else None
            self._executor.kill(wait=True) if self._executor.running() else None
            raise BrokerError(f"rabbitmq-server node {self.node_name} failed to start ({type(exc).__name__}"
                              f"{'' if code is None else f', exit {code}'}): {self.boot_error()}; "
                              f"last log lines:\n{self.logs(tail=30)}") from None

    def _exited(self) -> bool:
        return not self._executor.running()

    def _stop(self) -> None:
        process = self._executor.process
        self._executor.stop(stop_signal=signal.SIGTERM)
        self._last_exit = process.returncode if process is not None else None

    def _kill(self) -> None:
        process = self._executor.process
        self._executor.kill(wait=True, sig=signal.SIGKILL)      # also ends a paused (stopped) VM
        self._last_exit = process.returncode if process is not None else None

    # -- what a fault leaves to be seen ------------------------------------------------------
    def log_mark(self) -> int:
        try:
            return self.log_file.stat().st_size
        except OSError:
            return 0

    def log_since(self, mark: Any) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(mark or 0)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def exit_status(self) -> tuple[int | None, str]:
        """From the wait status of the process started (rabbitmq-server), as the kernel gave it."""
        code = getattr(self, "_last_exit", None)
        if code is None:
            return None, "no ended run of the broker known"
        if code < 0:
            return 128 - code, f"pid ended by {signal.Signals(-code).name} (wait status: signal {-code})"
        return code, f"pid exited with code {code}"

    def run_state(self) -> tuple[str, str]:
        """From /proc: the state of every process of the node's VM (``T``: stopped)."""
        from workqueue.testing.processes import process_states
        states = process_states(self._vm_pids())
        if not states:
            return "gone", "no process of the node is left"
        stopped = [s for s in states.values() if s[1] == "T"]
        words = ", ".join(f"{name} {pid} state {state}" for pid, (name, state) in sorted(states.items()))
        if len(stopped) == len(states):
            return "frozen", words
        return ("partly frozen" if stopped else "running"), words

    @property
    def pid(self) -> int | None:
        process = self._executor.process
        return process.pid if process is not None else None

    def _vm_pids(self) -> list[int]:
        """The Erlang VM (beam.smp) of this node and its helper processes (the started
        process and everything below it)."""
        from workqueue.testing.processes import descendants
        return [] if self.pid is None else [self.pid, *descendants(self.pid)]

    def _pause(self) -> None:
        for pid in self._vm_pids():
            os.kill(pid, signal.SIGSTOP)

    def _resume(self) -> None:
        for pid in self._vm_pids():
            os.kill(pid, signal.SIGCONT)

    def close(self) -> None:
        try:
            if self._executor.running():
                self._executor.kill(wait=True, sig=signal.SIGKILL)
        finally:
            if self._own_epmd:
                self.epmd.close()
            self._console.close()
            if self._own_dir:
                shutil.rmtree(self.base, ignore_errors=True)

    def ctl(self, *args: str) -> str:
        longnames = ["--longnames"] if "RABBITMQ_USE_LONGNAME" in self.env else []
        result = subprocess.run([*self.prefix, CTL, "-n", self.node_name, *longnames, *args],
                                env={**os.environ, **self.env},
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise BrokerError(f"rabbitmqctl {args[0]} failed: {result.stderr.strip().splitlines()[-1:]}")
        return result.stdout

    def listening_on(self) -> dict[int, set[str]]:
        ports = {self.port, self.management_port, self.dist_port, self.epmd_port}
        found: dict[int, set[str]] = {port: set() for port in ports}
        for address, port in listening_sockets():
            if port in found:
                found[port].add(address)
        return found

    def own_leftovers(self) -> list[str]:
        out: list[str] = []
        process = self._executor.process
        if process is not None and process.poll() is None:
            out.append(f"rabbitmq-server pid {process.pid}")
        if self._own_epmd:
            if self.epmd.process is not None and self.epmd.process.poll() is None:
                out.append(f"epmd pid {self.epmd.pid}")
            out += [f"stray epmd pid {pid}" for pid in self.epmd.strays()]
        if self._own_dir and self.base.exists():
            out.append(f"directory {self.base}")
        return out

    def boot_error(self) -> str:
        """The first error the node reported as its boot failed, from its log or its console
        (where RabbitMQ prints BOOT FAILED and the reason): a tail of the log would show info lines
        the error was followed by. "no error logged" when neither has one."""
        return first_error(*(_read_lines(path) for path in (self.log_file, self.console_log)))

    def logs(self, tail: int = 200) -> str:
        """The node's log; its console output (where boot errors go) when the log is empty."""
        for path in (self.log_file, self.console_log):
            lines = _read_lines(path)
            if lines:
                return "\n".join(lines[-tail:])
        return f"(no log at {self.log_file})"

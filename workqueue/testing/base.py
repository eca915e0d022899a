"""The one broker interface that tests, the demo and the benchmarks use."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import secrets
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pika
import pika.exceptions

from workqueue.errors import WorkqueueError
from workqueue.management import Management
from workqueue.testing import debian
from workqueue.urls import redact

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Broker settings every throwaway broker gets, so that the management API's numbers (queue
#: counts, consumers) trail the broker by about a second instead of five to ten: a Then that
#: reads them waits for them. Queues and channels report every 500 ms
#: (``collect_statistics_interval``, 5 s by default), and the management agent's collectors
#: gather the reports every second: they run at the shortest sampling interval of the
#: retention policies (``management.sample_retention_policies``, 5 s by default; a section left
#: out of the setting is empty, which the agent refuses, so all three are given). Measured on
#: 3.10.8: a classic queue's count reached the API 4.9-5.0 s after a publish by default, 0.9-1.0 s
#: with these (docs/schedule.md).
COMMON_CONF = ("collect_statistics_interval = 500\n"
               "management.sample_retention_policies.global.minute = 1\n"
               "management.sample_retention_policies.basic.minute = 1\n"
               "management.sample_retention_policies.detailed.minute = 1\n")

#: Settings of the rabbit application every throwaway broker gets (``-rabbit key value``; a
#: broker's own ``app_env`` wins): a quorum queue reports its counts on each tick of its Ra
#: server (``quorum_tick_interval``, 5 s by default), now every second; the same tick
#: repairs the queue's leader record after an election. A quorum queue's count reached the API
#: 5-10 s after a publish by default, 1-2 s with it (3.10.8).
COMMON_APP_ENV = {"quorum_tick_interval": 1000}


class BrokerError(WorkqueueError):
    """A throwaway broker could not be had (not installed, failed to start, no control)."""


class NoBroker(BrokerError):
    """No backend can provide a broker on this machine."""


class BrokerControlUnavailable(BrokerError):
    """The backend cannot stop, crash or restart its broker (e.g. a user-supplied URL)."""


_PORT_LOCKS: dict[int, int] = {}          # port -> open file whose flock reserves it for this process's lifetime


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _reserve(port: int) -> bool:
    """Claim ``port`` for this process among every process on the machine that uses this
    harness: an flock held until the process ends (even when it is killed outright)."""
    import fcntl
    directory = os.path.join(tempfile.gettempdir(), "workqueue-ports")
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, str(port)), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _PORT_LOCKS[port] = fd
    return True


def free_port() -> int:
    """A TCP port free on 127.0.0.1, kept for the brokers of this process.

    Not from the kernel's ephemeral range: a broker keeps its ports across a restart or a
    crash, and while it is down any outgoing connection on the machine may be given one of
    them as its local port (seen: a node that could not start again, ``dist_port_already_used``).
    Other test processes do not take it either (an flock per port)."""
    low, _ = _ephemeral_range()
    first = max(1024, low - 12000) if low > 11024 else None
    for _ in range(500):
        if first is None:                       # an unusual range: let the kernel choose
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        else:
            port = random.randrange(first, low)
        if port in _PORT_LOCKS:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if _reserve(port):
            return port
    raise BrokerError("no free TCP port found on 127.0.0.1")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it is truthy; raise TimeoutError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Target:
    """What brokers and clusters share: ``with`` starts, and closes on the way out (also when
    the start itself fails half-way); virtual hosts through the management API; and one fault
    interface, so that the soak and the steps never ask which of the two they hold:

    - ``fault_member(vhost, queue)``: the broker a fault should hit (a lone broker: itself; a
      cluster: the node leading the queue);
    - ``crash(member)`` (SIGKILL / docker kill, data kept), ``stop_member(member)`` (graceful);
    - ``recover(member)``: start it again and wait until it serves (a cluster: until it has
      rejoined);
    - ``can_work_without(member)``: whether work can go on while it is down (other nodes);
    - ``pause_member(member)`` / ``resume_member(member)``: freeze it (SIGSTOP of its Erlang VM, or
      ``docker pause``) and thaw it: clients and peers see a node alive at the TCP level and
      silent;
    - ``partition(member)`` / ``heal(member)``: cut it off from the other nodes and from the
      clients, and join it again (``can_partition``: container clusters only).
    """

    members: list[Broker]
    kind: str = "abstract"
    can_partition = False

    # -- what each kind of target provides ------------------------------------------------------
    def start(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def ensure_healthy(self) -> None:
        raise NotImplementedError

    def logs(self, tail: int = 200) -> str:
        return ""

    @property
    def management(self) -> Management:
        raise NotImplementedError

    @property
    def version(self) -> str:
        raise NotImplementedError

    # -- the fault interface ------------------------------------------------------------------
    def fault_member(self, vhost: str, queue: str) -> Broker:
        return self.members[0]

    def crash(self, member: Broker) -> None:
        member.kill()

    def stop_member(self, member: Broker) -> None:
        member.stop()

    def recover(self, member: Broker) -> None:
        member.start()

    def can_work_without(self, member: Broker) -> bool:
        return any(m is not member for m in self.members)

    def pause_member(self, member: Broker) -> None:
        member.pause()

    def resume_member(self, member: Broker) -> None:
        member.resume()

    def wait_new_leader(self, vhost: str, queue: str, old: Broker, timeout: float = 60) -> Broker:
        raise BrokerControlUnavailable(f"{type(self).__name__} has one node: no other can lead")

    def partition(self, member: Broker) -> None:
        raise BrokerControlUnavailable(
            f"{type(self).__name__} cannot cut a node off the network: partitions need a "
            f"cluster (--cluster), and on the node backend root (network namespaces)")

    def heal(self, member: Broker) -> None:
        self.partition(member)

    def probe_from(self, member: Broker, host: str, port: int) -> str:
        """A TCP connection attempt to ``host:port`` made from where ``member`` runs (its network
        namespace or container): ``connected``, ``refused``, ``timed out``, ``unreachable``."""
        from workqueue.testing.nemesis import probe
        return probe(host, port)

    def address_of(self, member: Broker) -> str | None:
        """The address the other nodes reach ``member`` at, as the system has it now (a
        partition must not change it)."""
        return member.host

    def leftovers(self) -> list[str]:
        """What close() should have removed and still exists (processes, directories,
        containers), each in a few words: empty after a clean close()."""
        return [item for m in self.members for item in m.own_leftovers()]

    def new_vhost(self, prefix: str = "scenario") -> str:
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.management.create_vhost(name)
        return name

    def delete_vhost(self, name: str) -> None:
        self.management.delete_vhost(name)

    def __enter__(self) -> Any:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def scenario_vhost(target: Target) -> Iterator[str]:
    """A fresh virtual host on a broker or cluster for one scenario; whatever the scenario
    stopped or crashed is started again before and after, and the vhost is deleted."""
    target.ensure_healthy()
    name = target.new_vhost()
    try:
        yield name
    finally:
        target.ensure_healthy()
        try:
            target.delete_vhost(name)
        except Exception:
            pass


class Broker(Target):
    """A RabbitMQ broker a test can start, stop, crash and start again.

    Throwaway brokers listen on 127.0.0.1 only, on ports chosen once (so the URL stays the same
    across restarts and crashes), with a user and password generated per broker and the
    management plugin enabled. Subclasses implement the ``_start``/``_stop``/``_kill`` hooks.
    """

    controllable = True
    node_name: str                  # the Erlang node name (node and container backends)

    def __init__(self, username: str | None = None, password: str | None = None, port: int | None = None,
                 management_port: int | None = None, extra_conf: str = "", startup_timeout: float = 90.0,
                 app_env: dict[str, int] | None = None, defaults: str | None = None):
        self.members = [self]
        self.host = "127.0.0.1"
        self.username = username or f"wq-{secrets.token_hex(3)}"
        self.password = password or secrets.token_urlsafe(18)
        self.port = port or free_port()
        self.management_port = management_port or free_port()
        self.extra_conf = extra_conf
        self.app_env = {**COMMON_APP_ENV, **(app_env or {})}
        self.startup_timeout = startup_timeout
        self.started = False
        self._version: str | None = None
        # upstream's defaults where Debian's package patches them (workqueue/testing/debian.py),
        # or Debian's own ("debian")
        self.defaults = debian.defaults_from_env(defaults)

    @property
    def package(self) -> str | None:
        """The version of the Debian rabbitmq-server package this broker runs, if it is one."""
        return None

    def restoring_conf(self) -> str:
        """rabbitmq.conf lines that undo the Debian patches of its package that change one of
        upstream's defaults (none with defaults "debian")."""
        return debian.restoring_conf(self.package, self.defaults)

    def erl_args(self) -> str:
        """``app_env`` as the Erlang VM's ``-rabbit key value`` arguments: settings of the rabbit
        application that rabbitmq.conf does not take (``channel_tick_interval``: how often a
        channel checks its consumer timeout, 60 s by default)."""
        for key, value in self.app_env.items():
            if not re.fullmatch(r"[a-z_]+", key) or not isinstance(value, int):
                raise ValueError(f"app_env takes rabbit settings as name = integer, not {key!r} = {value!r}")
        return "".join(f" -rabbit {key} {value}" for key, value in self.app_env.items())

    # -- lifecycle (public) -----------------------------------------------------------------
    def start(self) -> Broker:
        """Start (or start again on the same data) and wait until AMQP and the API answer."""
        self._start()
        self.wait_ready()
        self.started = True
        return self

    def stop(self) -> None:
        """Graceful shutdown; data stays for the next start()."""
        self._stop()
        wait_until(lambda: not port_open(self.port, self.host), 60, f"port {self.port} to close after stop")

    def kill(self) -> None:
        """A real crash: SIGKILL of the broker; data stays for the next start()."""
        self._kill()
        wait_until(lambda: not port_open(self.port, self.host), 60, f"port {self.port} to close after kill")

    def restart(self) -> None:
        self.stop()
        self.start()

    def crash_and_recover(self) -> None:
        self.kill()
        self.start()

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP / docker pause): its sockets stay open, nothing answers."""
        self._pause()

    def resume(self) -> None:
        """Thaw a paused broker."""
        self._resume()

    def close(self) -> None:
        """Stop and remove everything this broker made (process or container, data)."""
        raise NotImplementedError

    # -- readiness ----------------------------------------------------------------------------
    def is_ready(self) -> bool:
        try:
            conn = pika.BlockingConnection(self.params(connection_attempts=1, socket_timeout=2,
                                                       blocked_connection_timeout=2))
            conn.close()
            self.management.overview()
            return True
        except Exception:
            return False

    def wait_ready(self, timeout: float | None = None) -> None:
        def ready() -> bool:
            if self._exited():
                raise BrokerError(f"{self.kind} broker exited while starting; last log lines:\n"
                                  f"{self.logs(tail=30)}")
            return self.is_ready()
        try:
            wait_until(ready, timeout or self.startup_timeout,
                       f"{self.kind} broker on {self.host}:{self.port} to accept connections", 0.2)
        except TimeoutError as exc:
            raise BrokerError(f"{exc}; last log lines:\n{self.logs(tail=30)}") from None

    def _exited(self) -> bool:
        """True when the broker process or container has exited (a start that failed)."""
        return False

    def ensure_healthy(self) -> None:
        """Start the broker again if a scenario left it stopped or crashed."""
        if self.controllable and not self.is_ready():
            log.warning("broker not healthy after a scenario; starting it again")
            try:
                self._kill()
            except Exception:
                pass
            wait_until(lambda: not port_open(self.port, self.host), 60, "the broker port to close")
            self.start()

    # -- addresses ----------------------------------------------------------------------------
    def url(self, vhost: str = "/") -> str:
        """amqp://user:password@127.0.0.1:port/vhost (contains the password: do not log it)."""
        user = urllib.parse.quote(self.username, safe="")
        password = urllib.parse.quote(self.password, safe="")
        return f"amqp://{user}:{password}@{self.host}:{self.port}/{urllib.parse.quote(vhost, safe='')}"

    def params(self, vhost: str = "/", **kwargs: Any) -> pika.ConnectionParameters:
        """pika.ConnectionParameters for this broker and vhost."""
        return pika.ConnectionParameters(
            host=self.host, port=self.port, virtual_host=vhost,
            credentials=pika.PlainCredentials(self.username, self.password), **kwargs)

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"

    @property
    def management(self) -> Management:
        return Management(self.management_url, self.username, self.password)

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = self.management.overview()["rabbitmq_version"]
        return self._version

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    # -- rabbitmqctl, logs ---------------------------------------------------------------------

    def ctl(self, *args: str) -> str:
        """Run rabbitmqctl against this broker and return its stdout."""
        raise BrokerControlUnavailable(f"the {self.kind} backend cannot run rabbitmqctl")

    def list_queues(self, vhost: str = "/") -> dict[str, tuple[int, ...]]:
        """{name: (ready, unacked, consumers)} from ``rabbitmqctl list_queues``."""
        out = self.ctl("list_queues", "-p", vhost, "--quiet", "--no-table-headers",
                       "name", "messages_ready", "messages_unacknowledged", "consumers")
        rows: dict[str, tuple[int, ...]] = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 4 and parts[1].isdigit():
                rows[parts[0]] = tuple(int(p) for p in parts[1:])
        return rows

    def queue_state(self, queue: str, vhost: str = "/") -> str | None:
        """The state ``rabbitmqctl list_queues`` gives ``queue`` (running, down, minority...),
        None when it lists no such queue."""
        out = self.ctl("list_queues", "-p", vhost, "--quiet", "--no-table-headers", "name", "state")
        states = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
        return states.get(queue)

    def quorum_replica(self, queue: str, vhost: str, action: str) -> str:
        """Stop (``action`` "stop") or start again ("restart") the Ra server of quorum queue
        ``queue`` on this broker, through Ra's API (``ra:stop_server``, ``ra:restart_server``),
        and return the queue's state as list_queues reports it after. A stopped replica is what
        a quorum queue is between its declaration and the start of its Ra server: the queue
        exists, and nothing takes a consumer. The queue's record is read with RabbitMQ's
        internal ``rabbit_amqqueue:lookup`` (3.10 to 4.3); a call it no longer answers fails
        here, naming the queue."""
        def binary(text: str) -> str:
            return '<<"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"/utf8>>'
        call = {"stop": "stop_server", "restart": "restart_server"}[action]
        out = self.ctl("eval", f"{{ok, Q}} = rabbit_amqqueue:lookup(rabbit_misc:r({binary(vhost)}, queue, "
                               f"{binary(queue)})), ra:{call}(quorum_queues, amqqueue:get_pid(Q)).").strip()
        if out != "ok":
            raise BrokerError(f"ra:{call} of quorum queue {queue!r} in vhost {vhost!r} answered {out!r}")
        return self.queue_state(queue, vhost) or "not listed"

    def depth(self, queue: str, vhost: str = "/") -> tuple[int, int] | None:
        """(ready messages, consumers) of ``queue`` by AMQP passive declare (exact: no statistics
        lag), or None when there is no such queue."""
        conn = pika.BlockingConnection(self.params(vhost))
        try:
            method = conn.channel().queue_declare(queue, passive=True).method
            return method.message_count, method.consumer_count
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise
        finally:
            if conn.is_open:
                conn.close()

    def message_count(self, queue: str, vhost: str = "/") -> int | None:
        """Ready messages in ``queue`` (passive declare: exact), or None when there is no such queue."""
        depth = self.depth(queue, vhost)
        return None if depth is None else depth[0]

    def logs(self, tail: int = 200) -> str:
        return ""

    def listening_on(self) -> dict[int, set[str]]:
        """{port: {host addresses}} of every port this broker listens on (or publishes) on this
        machine: a throwaway broker must listen on loopback only."""
        raise BrokerControlUnavailable(f"the {self.kind} backend's broker is not ours to inspect")

    def own_leftovers(self) -> list[str]:
        return []

    # -- what a fault leaves to be seen (workqueue.testing.nemesis reads these) -------------------
    def log_mark(self) -> Any:
        """Where the broker's log is now: ``log_since(mark)`` is what it wrote after."""
        return None

    def log_since(self, mark: Any) -> str:
        return ""

    def exit_status(self) -> tuple[int | None, str]:
        """How the broker's last run ended, as a shell reports it (128 + the signal for one that
        was killed: 137 is SIGKILL), and in words; (None, why) when it is not known."""
        raise BrokerControlUnavailable(f"the {self.kind} backend's broker is not ours to inspect")

    def run_state(self) -> tuple[str, str]:
        """Whether the broker's processes run: ``running``, ``frozen`` (every one stopped),
        ``partly frozen`` or ``gone``, and in words what the kernel or the engine reports."""
        raise BrokerControlUnavailable(f"the {self.kind} backend's broker is not ours to inspect")

    def network_address(self) -> tuple[str, int]:
        """The address and AMQP port the broker listens on in its own network (what other nodes
        and, through it, the clients reach): a partition makes it unreachable."""
        return self.host, self.port

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redact(self.url())}>"

    # -- hooks --------------------------------------------------------------------------------
    def _start(self) -> None:
        raise NotImplementedError

    def _pause(self) -> None:
        raise BrokerControlUnavailable(f"a {self.kind} broker cannot be paused")

    def _resume(self) -> None:
        self._pause()

    def _stop(self) -> None:
        raise BrokerControlUnavailable(f"the {self.kind} backend cannot stop its broker")

    def _kill(self) -> None:
        raise BrokerControlUnavailable(f"the {self.kind} backend cannot crash its broker")

"""A RabbitMQ cluster of throwaway brokers: three nodes of one backend, formed at boot.

- node backend: three private rabbitmq-server nodes sharing one private epmd and one Erlang
  cookie, each with its own 127.0.0.1 ports and data;
- container backend: three containers on a user-defined Docker network (each node is
  ``rabbit@<hostname>`` there), sharing an Erlang cookie, each publishing its own ports on
  127.0.0.1.

The first node boots alone; the others boot together and join it by RabbitMQ's own peer
discovery (``classic_config``, listing the first node), as a cluster in production forms. That
is one boot per node: ``rabbitmqctl join_cluster`` would stop and start each joining node's
application again, and every rabbitmqctl call boots an Erlang VM of its own (22.6 s against
12.9 s for the cluster on an idle 2-core machine, and about twice the CPU).

Every member is a full Broker (url, params, kill, start, ctl, logs), so a scenario can crash
one node and start it again; ``wait_formed()`` waits until every node runs in the cluster.
"""

from __future__ import annotations

import concurrent.futures
import logging
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pika
import pika.exceptions

from workqueue.management import VHOST_SECONDS, Management
from workqueue.testing import netns
from workqueue.testing.base import Broker, BrokerControlUnavailable, BrokerError, Target, free_port, wait_until

if TYPE_CHECKING:
    from workqueue.testing.container import ContainerBroker

log = logging.getLogger(__name__)

#: RabbitMQ's advice for a cluster of three: a node that finds itself in the minority of a
#: partition pauses (closes its listeners) until the partition heals.
CLUSTER_CONF = "cluster_partition_handling = pause_minority\n"
#: Settings of the rabbit application every test cluster's nodes get (``-rabbit key value``,
#: which versions without the setting ignore): RabbitMQ 4.3 holds the tasks checked out to a
#: consumer on a node it lost (crashed, paused, cut off) for ``consumer_disconnected_timeout``
#: before giving them to other consumers, 60 s by default (3.10 and 4.0 return them at once);
#: 5 s here, so a crash scenario waits 5 s for them, not a minute. No scenario states the
#: default itself (docs/rabbitmq.md says what it does).
CLUSTER_APP_ENV = {"consumer_disconnected_timeout": 5000}


def member_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A cluster's keyword arguments for its members' brokers: the cluster's configuration and
    settings before the caller's own."""
    return {**kwargs, "extra_conf": CLUSTER_CONF + kwargs.get("extra_conf", ""),
            "app_env": {**CLUSTER_APP_ENV, **(kwargs.get("app_env") or {})}}


def join_conf(seed: str) -> str:
    """The configuration of a node that joins the cluster of ``seed`` (a node name) as it boots."""
    return ("cluster_formation.peer_discovery_backend = classic_config\n"
            f"cluster_formation.classic_config.nodes.1 = {seed}\n")


class Cluster(Target):
    """``size`` brokers joined into one cluster; usable as a context manager."""

    def __init__(self, members: Sequence[Broker], startup_timeout: float = 180.0):
        self.members = list(members)
        # member -> how to end the pause or partition it is in
        self.held: dict[Broker, Callable[[Broker], None]] = {}
        self.links: dict[Broker, str] = {}      # member cut off -> the link that was dropped
        self.startup_timeout = startup_timeout
        self.username = members[0].username
        self.password = members[0].password

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Cluster:
        """Boot the first node, then the others in parallel (each joins the first as it boots:
        ``join_conf``), and wait until every node runs in the cluster."""
        self.members[0].start()
        others = self.members[1:]
        with concurrent.futures.ThreadPoolExecutor(max(len(others), 1)) as pool:
            for future in [pool.submit(m.start) for m in others]:
                future.result()
        self.wait_formed()
        return self

    def close(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(len(self.members)) as pool:
            list(pool.map(_close_quietly, self.members))
        self._close_shared()

    def _close_shared(self) -> None:
        pass

    # -- nodes --------------------------------------------------------------------------------
    @property
    def nodes(self) -> list[str]:
        return [m.node_name for m in self.members]

    def member(self, node_name: str) -> Broker:
        return next(m for m in self.members if m.node_name == node_name)

    @property
    def management(self) -> Management:
        """The management API of a node that answers."""
        for member in self.members:
            try:
                member.management.overview()
                return member.management
            except Exception:
                continue
        raise BrokerError("no node of the cluster answers its management API")

    def running_nodes(self) -> list[str]:
        """Names of the nodes the cluster itself reports as running."""
        return sorted(n["name"] for n in self.management.request("GET", "/api/nodes?columns=name,running")
                      if n.get("running"))

    def wait_formed(self, timeout: float | None = None) -> None:
        """Wait until every node is running in the cluster (after start or a node's return)."""
        wait_until(lambda: self._formed(), timeout or self.startup_timeout,
                   f"all of {self.nodes} to run in one cluster")

    def _formed(self) -> bool:
        try:
            return self.running_nodes() == sorted(self.nodes)
        except Exception:
            return False

    def fault_member(self, vhost: str, queue: str, timeout: float = 60) -> Broker:
        """The node leading ``queue`` (a quorum queue's leader, a classic queue's home), once the
        management API names one; never a guess: TimeoutError when it names none in time."""
        found = wait_until(lambda: self.leader(vhost, queue), timeout, f"a node to lead queue {queue!r}")
        return self.member(found)

    def wait_new_leader(self, vhost: str, queue: str, old: Broker, timeout: float = 60) -> Broker:
        """The node that leads ``queue`` in place of ``old``, as a node other than ``old`` says
        (the faulted node's own API may still name itself: a paused node's view is stale)."""
        others = [m for m in self.members if m is not old]

        def named() -> str | None:
            for member in others:
                try:
                    leader = _leader_of(member.management.queue(vhost, queue))
                except Exception:
                    continue
                if leader and leader != old.node_name:
                    return leader
            return None
        return self.member(wait_until(named, timeout, f"a node other than {old.node_name} to lead {queue!r}"))

    def recover(self, member: Broker) -> None:
        """Start a crashed or stopped node again on its data and wait until it is back in the
        cluster."""
        member.start()
        self.wait_formed()

    def pause_member(self, member: Broker) -> None:
        member.pause()
        self.held[member] = self.resume_member

    def resume_member(self, member: Broker) -> None:
        """Thaw a paused node and wait until the cluster has it running again."""
        self.held.pop(member, None)
        member.resume()
        member.wait_ready()
        self.wait_formed()

    def partition(self, member: Broker) -> None:
        """Drop the node's link, as Jepsen drops its packets: the end of it on this machine's
        side (``host_link``) goes down. No other node reaches it and no client either; it keeps
        its address and its sockets."""
        link = self.host_link(member)
        netns.set_link(link, up=False)
        self.links[member] = link
        self.held[member] = self.heal

    def heal(self, member: Broker) -> None:
        """Bring its link up again and wait until the cluster has it running."""
        self.held.pop(member, None)
        link = self.links.pop(member, None)
        if link is not None:
            netns.set_link(link, up=True)
        member.wait_ready()
        self.wait_formed()

    def host_link(self, member: Broker) -> str:
        """The name, in this machine's network namespace, of the link that joins ``member`` to
        the other nodes and the clients (what a partition drops)."""
        raise NotImplementedError

    def ensure_healthy(self) -> None:
        """End any pause or partition a scenario left, start any node it left down, and wait
        for the whole cluster."""
        for member, undo in list(self.held.items()):
            log.warning("cluster node %s left paused or cut off after a scenario; ending that", member.node_name)
            undo(member)
        for member in self.members:
            if not member.is_ready():
                log.warning("cluster node %s down after a scenario; starting it again", member.node_name)
                member.ensure_healthy()
        self.wait_formed()

    # -- queues -------------------------------------------------------------------------------
    def queue_info(self, vhost: str, queue: str) -> dict[str, Any]:
        return self.management.queue(vhost, queue)

    def leader(self, vhost: str, queue: str) -> str | None:
        """The node leading a quorum queue (or hosting a classic one), or None."""
        return _leader_of(self.queue_info(vhost, queue))

    def wait_replicated(self, vhost: str, queue: str, timeout: float = 60) -> None:
        """Wait until a quorum queue has a leader and every node online as a member."""
        seen: dict[str, str] = {}

        def replicated() -> bool:
            try:
                info = self.queue_info(vhost, queue)
            except Exception as exc:
                seen["last"] = f"no answer ({type(exc).__name__})"
                return False
            online = sorted(info.get("online") or [])
            seen["last"] = f"leader {info.get('leader') or info.get('node')}, online {online}"
            return bool(info.get("leader") or info.get("node")) and online == sorted(self.nodes)
        try:
            wait_until(replicated, timeout, f"quorum queue {queue!r} to have all of {self.nodes} online")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last seen: {seen.get('last', 'nothing')}") from None

    def new_vhost(self, prefix: str = "scenario") -> str:
        """A fresh vhost, once every node lets our user open a connection on it: a worker of the
        soak given the third node was refused ("no access to the virtual host") a second after
        the management API had answered the vhost's creation and its permissions (CI on a clean
        clone, 3.10.8 node cluster that had just formed, 2026-12-02). A node that says the vhost
        "is down" never started it (its log has no line of it: seen on 3.10.8 node clusters just
        formed, 2026-12-05, three times in five; the soak's first vhost timed out in CI):
        ``rabbitmqctl restart_vhost`` ("Restarts a failed vhost data stores and queues", its help)
        starts it there; the wait goes on."""
        name = super().new_vhost(prefix)
        restarted: set[str] = set()

        def open_everywhere() -> bool:
            states = {m.node_name: _vhost_state(m, name) for m in self.members}
            for member in self.members:
                if states[member.node_name] == "down" and member.node_name not in restarted:
                    restarted.add(member.node_name)
                    log.warning("vhost %r is down on %s right after its creation; restarting it there",
                                name, member.node_name)
                    member.ctl("restart_vhost", "-p", name)
            return all(state == "open" for state in states.values())
        wait_until(open_everywhere, VHOST_SECONDS, f"every node to let a client open vhost {name!r}")
        return name

    # -- addresses, as a Broker ---------------------------------------------------------------
    def urls(self, vhost: str = "/") -> list[str]:
        return [m.url(vhost) for m in self.members]

    def url(self, vhost: str = "/") -> str:
        return self.members[0].url(vhost)

    def params(self, vhost: str = "/", **kwargs: Any) -> list[pika.ConnectionParameters]:
        """One pika.ConnectionParameters per node, first node first."""
        return [m.params(vhost, **kwargs) for m in self.members]

    @property
    def version(self) -> str:
        return self.members[0].version

    def logs(self, tail: int = 60) -> str:
        return "\n".join(f"--- {m.node_name}\n{m.logs(tail=tail)}" for m in self.members)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.nodes}>"


def _leader_of(info: dict[str, Any] | None) -> str | None:
    return (info or {}).get("leader") or (info or {}).get("node")


def _vhost_state(member: Broker, vhost: str) -> str:
    """Whether ``member`` lets our user open a connection on ``vhost``: ``open``, ``down`` (the
    node says the vhost is down: 541 INTERNAL_ERROR) or ``not yet`` (refused otherwise, or not
    answering)."""
    try:
        pika.BlockingConnection(member.params(vhost)).close()
        return "open"
    except pika.exceptions.AMQPError as exc:
        return "down" if "is down" in str(exc) else "not yet"


def _close_quietly(member: Broker) -> None:
    try:
        member.close()
    except Exception as exc:  # pragma: no cover - best effort
        log.warning("closing %s: %s", member, exc)


class NodeCluster(Cluster):
    """Three local rabbitmq-server nodes: one cookie, one temp directory, and as root one
    network namespace each (netns.Lan: its own address, a link a partition can drop; each node
    with its own epmd there, all on one port). Without root the nodes share 127.0.0.1 and one
    epmd, and ``can_partition`` is False."""

    kind = "node"

    def __init__(self, size: int = 3, **kwargs: Any):
        from workqueue.testing.node import Epmd, NodeBroker

        kwargs = member_kwargs(kwargs)
        self.base = Path(tempfile.mkdtemp(prefix="workqueue-cluster-"))
        self.lan: netns.Lan | None = None
        self.epmds: list[Epmd] = []
        cookie = secrets.token_hex(16).upper()
        username = kwargs.pop("username", None) or f"wq-{secrets.token_hex(3)}"
        password = kwargs.pop("password", None) or secrets.token_urlsafe(18)
        members: list[Broker] = []
        try:
            if netns.unavailable() is None:
                self.lan = netns.Lan(size).create()
            epmd_port = free_port()
            for i in range(1, size + 1):
                port = free_port()
                conf = kwargs["extra_conf"] + (join_conf(members[0].node_name) if members else "")
                if self.lan is not None:        # its own address, epmd and long node name
                    host, prefix = self.lan.address(i), self.lan.exec_prefix(i)
                    node = f"wq{i}x{port}@{host}"
                    self.epmds.append(Epmd(epmd_port, f"127.0.0.1,{host}", prefix))
                else:                           # all on loopback, sharing one epmd
                    host, prefix, node = "127.0.0.1", [], f"wq{i}x{port}@localhost"
                    if not self.epmds:
                        self.epmds.append(Epmd(epmd_port))
                epmd = self.epmds[-1]
                members.append(NodeBroker(base_dir=self.base / f"node{i}", node_name=node, port=port, host=host,
                                          prefix=prefix, epmd=epmd, cookie=cookie, username=username,
                                          password=password, **{**kwargs, "extra_conf": conf}))
        except BaseException:
            self._close_shared()
            raise
        super().__init__(members)

    @property
    def can_partition(self) -> bool:    # type: ignore[override]
        return self.lan is not None

    def host_link(self, member: Broker) -> str:
        """The bridge's end of the node's veth (netns.Lan.host_end)."""
        if self.lan is None:
            raise BrokerControlUnavailable(f"a node cluster cannot cut a node off without network namespaces: "
                                           f"{netns.unavailable()}")
        return self.lan.host_end(self.members.index(member) + 1)

    def probe_from(self, member: Broker, host: str, port: int) -> str:
        """Run in the member's namespace (``ip netns exec``), with the nemesis's own probe."""
        if self.lan is None:
            return super().probe_from(member, host, port)
        code = ("import sys; from workqueue.testing.nemesis import probe; "
                "print(probe(sys.argv[1], int(sys.argv[2])))")
        result = subprocess.run([*self.lan.exec_prefix(self.members.index(member) + 1), sys.executable, "-c", code,
                                 host, str(port)], capture_output=True, text=True, timeout=60)
        return result.stdout.strip() or f"failed (exit {result.returncode}: {result.stderr.strip()[-120:]})"

    def address_of(self, member: Broker) -> str | None:
        if self.lan is None:
            return member.host
        return self.lan.current_address(self.members.index(member) + 1)

    def leftovers(self) -> list[str]:
        epmds = [f"epmd pid {e.pid}" for e in self.epmds if e.process is not None and e.process.poll() is None]
        strays = [f"stray epmd pid {pid}" for e in self.epmds for pid in e.strays()] if self.lan is None else []
        return (super().leftovers() + epmds + strays
                + (self.lan.leftovers() if self.lan is not None else []))

    def _close_shared(self) -> None:
        for epmd in self.epmds:
            epmd.close()
        if self.lan is not None:
            self.lan.close()
        shutil.rmtree(self.base, ignore_errors=True)


class ContainerCluster(Cluster):
    """Three containers on a user-defined Docker network (testcontainers' Network)."""

    kind = "container"

    def __init__(self, size: int = 3, **kwargs: Any):
        from testcontainers.core.network import Network

        from workqueue.testing.container import ContainerBroker

        kwargs = member_kwargs(kwargs)
        self.network = Network().create()
        tag = secrets.token_hex(3)
        cookie = secrets.token_hex(16).upper()
        username = kwargs.pop("username", None) or f"wq-{secrets.token_hex(3)}"
        password = kwargs.pop("password", None) or secrets.token_urlsafe(18)
        try:
            joining = kwargs["extra_conf"] + join_conf(f"rabbit@wq{tag}n1")
            members = [ContainerBroker(network=self.network, hostname=f"wq{tag}n{i}", cookie=cookie,
                                       username=username, password=password,
                                       **{**kwargs, "extra_conf": joining if i > 1 else kwargs["extra_conf"]})
                       for i in range(1, size + 1)]
        except BaseException:
            self.network.remove()
            raise
        super().__init__(members)

    can_partition = True

    def _network_settings(self, member: ContainerBroker,
                          command: list[str] | None = None) -> tuple[dict[str, Any], str]:
        """The engine's settings of the container on the cluster's network, and what
        ``command`` printed when run in the container."""
        from workqueue.testing.container import docker_client
        client = docker_client()
        try:
            container = client.containers.get(member.container_id)
            output = container.exec_run(command).output.decode(errors="replace") if command else ""
            return container.attrs["NetworkSettings"]["Networks"][self.network.name], output
        finally:
            client.close()

    def host_link(self, member: Broker) -> str:
        """The end of the container's veth on this machine's side of the Docker bridge, which
        joins its interface on the cluster's network (looked up at each cut: a container started
        again has a new veth). The engine must run on this machine. (Until 2026-12-02 a
        partition took the container off the network, and it came back with the next free
        address: the others' connections to the old one stayed dead until net_ticktime.)"""
        member = _container(member)
        settings, out = self._network_settings(
            member, ["sh", "-c", 'for i in /sys/class/net/*; do echo "$(cat $i/address) $(cat $i/iflink)"; done'])
        mac = settings["MacAddress"].lower()
        peer = next((line.split()[1] for line in out.splitlines() if line.split()[:1] == [mac]), None)
        for link in Path("/sys/class/net").iterdir():
            try:
                if peer is not None and (link / "ifindex").read_text().strip() == peer:
                    return link.name
            except OSError:
                continue
        raise BrokerError(f"the link of {member.node_name} on the cluster's network is not on this machine "
                          f"(MAC {mac}, peer index {peer}): partitions need the Docker engine here, as root")

    def probe_from(self, member: Broker, host: str, port: int) -> str:
        """Run in the member's container: bash's /dev/tcp under coreutils' timeout (exit 124)."""
        seconds = 2
        _, out = self._network_settings(_container(member), [
            "sh", "-c", f"timeout {seconds} bash -c 'exec 3<>/dev/tcp/{host}/{port}' 2>&1; echo \"exit $?\""])
        lines = out.strip().splitlines()
        code = lines[-1].split()[-1] if lines and lines[-1].startswith("exit ") else "?"
        said = " ".join(lines[:-1]).lower()
        if code == "0":
            return "connected"
        if code == "124":
            return "timed out"
        if "refused" in said:
            return "refused"
        if "no route" in said or "unreachable" in said:
            return "unreachable"
        return f"failed (exit {code}: {said[-120:]})"

    def address_of(self, member: Broker) -> str | None:
        """The container's address on the cluster's network, as the engine has it now."""
        return self._network_settings(_container(member))[0].get("IPAddress") or None

    def _close_shared(self) -> None:
        from workqueue.testing.container import remove_until_gone
        network_id = self.network.id
        remove_until_gone("network", lambda client: client.networks.get(network_id).remove(),
                          self.network.name)


def _container(member: Broker) -> ContainerBroker:
    """A member of a ContainerCluster as what it is (a container has a network to leave)."""
    from workqueue.testing.container import ContainerBroker
    assert isinstance(member, ContainerBroker), member
    return member

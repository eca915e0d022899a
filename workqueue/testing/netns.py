"""A private network for the nodes of a node-backend cluster: one network namespace per node.

On one machine a node cluster's nodes would all listen on 127.0.0.1, and no fault can cut one
of them off from the others. Here each node lives in a network namespace of its own, with its
own address, plugged by a veth pair into one bridge in this machine's namespace::

    this machine's namespace                    one namespace per node
    bridge wq<tag>b 198.18.N.254/24 --- wq<tag>h1 ====== wq<tag>n1 198.18.N.1  (node 1)
                                    --- wq<tag>h2 ====== wq<tag>n2 198.18.N.2  (node 2)
                                    --- wq<tag>h3 ====== wq<tag>n3 198.18.N.3  (node 3)

Clients (the tests, workers, producers) stay in this machine's namespace and reach each node
through the bridge. A partition drops a node's link as Jepsen drops its packets: the bridge's
end of its veth goes down, so nothing reaches the node and nothing leaves it, while the node
keeps its address, its routes and its sockets; healing brings the link up and every TCP
connection resumes where it stalled. The addresses are from 198.18.0.0/15 (RFC 2544: set aside
for tests on one's own network), in a /24 no interface of this machine uses; nothing routes
them anywhere else: the namespaces have no default route, and only this machine's namespace
reaches them.

Needs root and Debian's iproute2 (``ip``): ``unavailable()`` says why not, in one line.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import random
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

IP = shutil.which("ip") or "/usr/sbin/ip"
#: 512 /24 networks set aside for tests (RFC 2544); one is chosen per cluster.
POOL = ipaddress.IPv4Network("198.18.0.0/15")
#: Names of our namespaces: wq-<pid of the owner process>-<tag>-<node number>.
NAME = re.compile(r"^wq-(?P<pid>\d+)-(?P<tag>[0-9a-f]{6})-(?P<index>\d+)$")


class NetnsError(RuntimeError):
    """An ``ip`` command failed (its stderr, one line)."""


def unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no ``ip``), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns)"
    if not os.path.exists(IP):
        return "network namespaces need iproute2's ip (apt-get install iproute2)"
    return None


def ip(*args: str, check: bool = True) -> str:
    result = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip() or f'exit {result.returncode}'}")
    return result.stdout


def set_link(name: str, up: bool) -> None:
    """Set a link of this machine's namespace up or down (down: it drops every packet; the
    addresses and routes on both ends stay)."""
    ip("link", "set", name, "up" if up else "down")


def namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def _used_networks() -> list[ipaddress.IPv4Network]:
    used = []
    for line in ip("-4", "-o", "addr", "show").splitlines():
        fields = line.split()
        if "inet" in fields:
            used.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    return used


class Lan:
    """``size`` namespaces on one bridge; ``address(i)``, ``namespace(i)`` for node i (from 1).
    A context manager; ``close()`` removes everything it made."""

    def __init__(self, size: int):
        self.size = size
        self.tag = secrets.token_hex(3)
        self.bridge = f"wq{self.tag}b"
        self.network: ipaddress.IPv4Network | None = None
        self.made: list[str] = []           # what close() removes: "link:<name>", "netns:<name>"

    def namespace(self, i: int) -> str:
        return f"wq-{os.getpid()}-{self.tag}-{i}"

    def host_end(self, i: int) -> str:
        """The bridge's end of node i's veth: the cable a partition pulls."""
        return f"wq{self.tag}h{i}"

    def node_end(self, i: int) -> str:
        return f"wq{self.tag}n{i}"

    def address(self, i: int) -> str:
        assert self.network is not None, "Lan.create() first"
        return str(self.network[i])

    def create(self) -> Lan:
        reason = unavailable()
        if reason:
            raise NetnsError(reason)
        reap_orphans()
        try:
            # One process at a time picks a free /24 and puts it on its bridge.
            with open(os.path.join(tempfile.gettempdir(), "workqueue-netns.lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                used = _used_networks()
                free = [n for n in POOL.subnets(new_prefix=24) if not any(n.overlaps(u) for u in used)]
                if not free:
                    raise NetnsError(f"no /24 of {POOL} is free on this machine")
                network = self.network = random.choice(free)
                ip("link", "add", self.bridge, "type", "bridge")
                self.made.append(f"link:{self.bridge}")
                ip("addr", "add", f"{network[254]}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for i in range(1, self.size + 1):
                ns = self.namespace(i)
                ip("netns", "add", ns)
                self.made.append(f"netns:{ns}")
                ip("link", "add", self.host_end(i), "type", "veth", "peer", "name", self.node_end(i))
                self.made.append(f"link:{self.host_end(i)}")
                ip("link", "set", self.node_end(i), "netns", ns)
                ip("link", "set", self.host_end(i), "master", self.bridge)
                ip("link", "set", self.host_end(i), "up")
                ip("-n", ns, "link", "set", "lo", "up")
                ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", self.node_end(i))
                ip("-n", ns, "link", "set", self.node_end(i), "up")
        except BaseException:
            self.close()
            raise
        return self

    # -- faults -----------------------------------------------------------------------------
    def cut(self, i: int) -> None:
        """Drop node i's link: its packets go nowhere, its address and sockets stay."""
        set_link(self.host_end(i), up=False)

    def heal(self, i: int) -> None:
        set_link(self.host_end(i), up=True)

    def is_cut(self, i: int) -> bool:
        return "state DOWN" in ip("-o", "link", "show", self.host_end(i))

    def current_address(self, i: int) -> str | None:
        """Node i's IPv4 address as its namespace has it now (not as this object remembers it)."""
        for line in ip("-n", self.namespace(i), "-4", "-o", "addr", "show", "dev", self.node_end(i)).splitlines():
            fields = line.split()
            if "inet" in fields:
                return str(ipaddress.ip_interface(fields[fields.index("inet") + 1]).ip)
        return None

    def exec_prefix(self, i: int) -> list[str]:
        """The command prefix that runs a program in node i's namespace (``ip netns exec`` execs
        it: the pid is the program's own)."""
        return [IP, "netns", "exec", self.namespace(i)]

    # -- end --------------------------------------------------------------------------------
    def close(self) -> None:
        """Remove the links and namespaces made (the nodes in them must have ended)."""
        for item in reversed(self.made):
            kind, name = item.split(":", 1)
            if kind == "link":
                ip("link", "del", name, check=False)
            else:
                ip("netns", "del", name, check=False)
        self.made.clear()

    def leftovers(self) -> list[str]:
        out = [f"network namespace {ns}" for ns in namespaces() if ns.startswith(f"wq-{os.getpid()}-{self.tag}-")]
        if Path(f"/sys/class/net/{self.bridge}").exists():
            out.append(f"bridge {self.bridge}")
        return out

    def __enter__(self) -> Lan:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.close()


def reap_orphans() -> list[str]:
    """Remove the namespaces (and their bridge) of owners that are gone, when no process is
    left in them (an owner killed outright could not remove its own). Returns their names."""
    from workqueue.testing.processes import alive
    removed = []
    for ns in namespaces():
        match = NAME.match(ns)
        if not match or alive(int(match["pid"])):
            continue
        if ip("netns", "pids", ns, check=False).strip():
            continue                    # something still runs in it: not ours to end
        ip("netns", "del", ns, check=False)
        ip("link", "del", f"wq{match['tag']}b", check=False)
        ip("link", "del", f"wq{match['tag']}h{match['index']}", check=False)
        removed.append(ns)
    return removed

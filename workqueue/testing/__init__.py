"""Throwaway RabbitMQ brokers for tests, the demo and the benchmarks.

One interface (workqueue.testing.base.Broker), three backends:

- ``node``: Debian's rabbitmq-server as a private process (NodeBroker);
- ``container``: testcontainers' RabbitMqContainer (ContainerBroker);
- ``url``: a broker the user already runs (UrlBroker; no stop/kill/restart).

``make_broker()`` and ``make_cluster()`` (three nodes of the node or container backend joined
into one RabbitMQ cluster) are the only places that choose between them.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

from workqueue.testing.base import (
    Broker,
    BrokerControlUnavailable,
    BrokerError,
    NoBroker,
    free_port,
    scenario_vhost,
    wait_until,
)

if TYPE_CHECKING:
    from workqueue.testing.cluster import Cluster

BACKENDS = ("auto", "node", "container", "url")
#: How old a queue must be before its broker is crashed under it. A queue crashed within a
#: second or two of its declaration can be lost with its confirmed tasks (a RabbitMQ defect:
#: quorum_early_crash in features/defects.toml; see docs/rabbitmq.md), which a scenario or a
#: soak about something else must not trip over. Not a synchronisation: nothing the broker
#: shows says when a declaration is on disk.
QUEUE_SETTLE_SECONDS = 6
#: What the throwaway brokers import, all from the test extra.
TEST_EXTRA_MODULES = ("mirakuru", "pytest_rabbitmq", "testcontainers", "docker")


class MissingExtra(NoBroker):
    """Throwaway brokers need the test extra, which is not installed."""

    exit_code = 2


def require_test_extra() -> None:
    missing = [m for m in TEST_EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtra(f"throwaway brokers need the test extra: pip install 'workqueue[test]' "
                           f"(missing: {', '.join(missing)})")

NO_BROKER = ("no RabbitMQ broker can be had: start a Docker engine (--broker=container), "
             "install rabbitmq-server (--broker=node), or give a running broker "
             "(--broker=url --broker-url=amqp://...)")


def choose_backend(kind: str | None = None) -> str:
    """The backend to use: ``kind``, else WORKQUEUE_BROKER, else auto-detection."""
    from workqueue.testing.container import docker_available, require_docker
    from workqueue.testing.node import node_available, require_node

    kind = kind or os.environ.get("WORKQUEUE_BROKER") or "auto"
    if kind not in BACKENDS:
        raise NoBroker(f"unknown broker backend {kind!r}: choose one of {', '.join(BACKENDS)}")
    if kind != "url":
        require_test_extra()
    if kind == "auto":
        if docker_available():
            return "container"
        if node_available():
            return "node"
        raise NoBroker(NO_BROKER)
    if kind == "node":
        require_node()
    elif kind == "container":
        require_docker()
    elif kind == "url" and not os.environ.get("WORKQUEUE_BROKER_URL"):
        raise NoBroker("--broker=url needs --broker-url=amqp://user:pass@host:port/ (or WORKQUEUE_BROKER_URL)")
    return kind


def make_broker(kind: str | None = None, url: str | None = None, **kwargs: Any) -> Broker:
    """A Broker of the chosen backend (not yet started)."""
    kind = choose_backend(kind)
    if kind == "node":
        from workqueue.testing.node import NodeBroker
        return NodeBroker(**kwargs)
    if kind == "container":
        from workqueue.testing.container import ContainerBroker
        return ContainerBroker(**kwargs)
    from workqueue.testing.url import UrlBroker
    return UrlBroker(url or os.environ["WORKQUEUE_BROKER_URL"],
                     management_url=os.environ.get("WORKQUEUE_MANAGEMENT_URL"))


def reap_orphans() -> list[str]:
    """Remove what throwaway brokers of processes killed outright left behind: containers of
    the container backend, data directories of the node backend (whose node, once its owner is
    gone, has ended too). Returns a description of each thing removed."""
    from workqueue.testing.container import docker_available
    from workqueue.testing.container import reap_orphans as reap_containers
    from workqueue.testing.node import reap_orphan_dirs
    # A soak's directory (its workers' records) has an owner.pid of the same kind.
    found = [f"directory {path}" for prefix in ("workqueue-node-", "workqueue-soak-")
             for path in reap_orphan_dirs(prefix=prefix)]
    return found + ([f"container {cid[:12]}" for cid in reap_containers()] if docker_available() else [])


def make_cluster(kind: str | None = None, size: int = 3, **kwargs: Any) -> Cluster:
    """A Cluster of ``size`` nodes of the chosen backend (not yet started)."""
    kind = choose_backend(kind)
    if kind == "node":
        from workqueue.testing.cluster import NodeCluster
        return NodeCluster(size, **kwargs)
    if kind == "container":
        from workqueue.testing.cluster import ContainerCluster
        return ContainerCluster(size, **kwargs)
    raise BrokerControlUnavailable("a cluster needs --broker=node or --broker=container: the url "
                                   "backend cannot start brokers")


__all__ = ["BACKENDS", "QUEUE_SETTLE_SECONDS", "Broker", "BrokerControlUnavailable", "BrokerError", "MissingExtra",
           "NoBroker", "choose_backend", "free_port", "make_broker", "make_cluster", "reap_orphans", "scenario_vhost",
           "wait_until"]

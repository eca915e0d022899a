"""Backend ``container``: testcontainers' RabbitMqContainer (Docker SDK underneath).

The image comes from WORKQUEUE_RABBITMQ_IMAGE: the official management image at a pinned
version where it can be pulled, or one built from Debian's packages by
scripts/rabbitmq-image.sh where it cannot. Ports are published on fixed 127.0.0.1 ports, so
the URL survives `docker stop`/`kill`/`start`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

# testcontainers reads these once at import. Ryuk (the reaper container) cannot be pulled here:
# every container is removed by id in close(), and those of an owner killed outright by
# reap_orphans(); the broker is reached through 127.0.0.1.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")

from workqueue.testing import debian  # noqa: E402
from workqueue.testing.base import COMMON_CONF, Broker, BrokerError, NoBroker  # noqa: E402
from workqueue.testing.processes import alive  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_IMAGE = "rabbitmq:4.1.4-management"
#: Label on every container of a throwaway broker: the pid of the process that made it.
OWNER_LABEL = "workqueue.owner-pid"


def reap_orphans() -> list[str]:
    """Remove the containers of throwaway brokers whose owner process is gone (killed
    outright, so it could not close them): the job testcontainers' Ryuk would do, were its
    image at hand here. Returns the ids removed."""
    import docker
    client = docker_client()
    removed: list[str] = []
    try:
        found: list[Any] = []
        for _ in range(3):
            try:
                found = client.containers.list(all=True, filters={"label": OWNER_LABEL})
                break
            except docker.errors.NotFound:      # one was removed (by another reaper) while listed
                continue
        for container in found:
            pid = int(container.labels.get(OWNER_LABEL) or 0)
            # Removed as every container of the harness is: tried again on a timeout (a removal
            # on the vfs driver outlasts the client's 10 s under load) or a 409 (another
            # process reaping the same orphan), until gone.
            if pid and not alive(pid) and remove_until_gone("container", _remover(container.id), container.short_id):
                removed.append(container.id)
    finally:
        client.close()
    return removed


def _remover(container_id: str) -> Callable[[Any], object]:
    """How to remove one container, by id, with a client remove_until_gone gives."""
    return lambda client: client.containers.get(container_id).remove(force=True, v=True)


def _docker_container_class() -> Any:
    from testcontainers.core.container import DockerContainer
    return DockerContainer


def image_from_env() -> str:
    return os.environ.get("WORKQUEUE_RABBITMQ_IMAGE") or DEFAULT_IMAGE


def docker_client(timeout: int = 10) -> Any:
    import docker
    return docker.from_env(timeout=timeout)


#: How long a pause is tried again when the kernel's freezer cannot freeze the container at once.
PAUSE_SECONDS = 30
#: How long the removal of a container or network is tried: at the end of a parallel run every
#: test process removes its brokers at once, and the engine can be slow to answer one call.
REMOVE_SECONDS = 120


def remove_until_gone(kind: str, remove: Callable[[Any], object], what: str) -> bool:
    """Call ``remove(client)`` until the thing is gone (removed, or not found), trying again on
    any other error until REMOVE_SECONDS have passed; then log a warning. True when gone."""
    import docker
    deadline = time.monotonic() + REMOVE_SECONDS
    while True:
        client = docker_client(timeout=60)
        try:
            remove(client)
            return True
        except docker.errors.NotFound:
            return True
        except Exception as exc:        # timeouts, 409 removal in progress, active endpoints
            error = exc
        finally:
            client.close()
        if time.monotonic() > deadline:
            log.warning("could not remove %s %s: %s", kind, what, error)
            return False
        time.sleep(1)                   # back-off between attempts, not a synchronisation


def docker_available() -> bool:
    try:
        client = docker_client()
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def require_docker() -> None:
    if not docker_available():
        where = os.environ.get("DOCKER_HOST", "the default socket")
        raise NoBroker(f"--broker=container needs a Docker engine: none answered at {where} "
                       "(start one, e.g. scripts/dockerd.sh start, and set DOCKER_HOST)")


class ContainerBroker(Broker):
    """One RabbitMQ container.

    ``network``, ``hostname`` and ``cookie`` are given by a ContainerCluster: its containers
    share a user-defined Docker network, on which each node is ``rabbit@<hostname>``, and an
    Erlang cookie. Each still publishes its own ports on 127.0.0.1 only.
    """

    kind = "container"

    def __init__(self, *, image: str | None = None, network: Any = None, hostname: str | None = None,
                 cookie: str | None = None, **kwargs: Any):
        require_docker()
        super().__init__(**kwargs)
        from testcontainers.community.rabbitmq import RabbitMqContainer

        self.image = image or image_from_env()
        self.cookie = cookie
        self.hostname = hostname
        self.node_name = f"rabbit@{hostname}" if hostname else ""    # a lone container: not needed
        conf = COMMON_CONF + self.restoring_conf() + (self.extra_conf or "")
        container = RabbitMqContainer(self.image, username=self.username, password=self.password)
        # Publish on fixed loopback ports: the address then survives stop/kill/start.
        # (the Docker SDK takes (host address, port); testcontainers types the value as a port)
        container.ports["5672"] = ("127.0.0.1", self.port)  # type: ignore[assignment]
        container.ports["15672"] = ("127.0.0.1", self.management_port)  # type: ignore[assignment]
        container.with_env("RABBITMQ_EXTRA_CONF", conf)                    # workqueue images
        container.with_copy_into_container(conf.encode(), "/etc/rabbitmq/conf.d/90-workqueue.conf")
        create: dict[str, Any] = {"labels": {OWNER_LABEL: str(os.getpid())}}
        if network is not None:
            container.with_network(network).with_network_aliases(hostname or "")
            create["hostname"] = hostname
            container.with_env("RABBITMQ_NODENAME", self.node_name)
        container.with_kwargs(**create)
        erl_args = (f"-setcookie {cookie}" if cookie else "") + self.erl_args()
        if erl_args:
            container.with_env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", erl_args.strip())
        self._container = container
        self._created = False
        self._id: str | None = None

    @property
    def package(self) -> str | None:
        """The image's rabbitmq-server package, as scripts/rabbitmq-image.sh labels it (None for
        another image: the official images are upstream's builds)."""
        if not hasattr(self, "_package"):
            client = docker_client()
            try:
                labels = client.images.get(self.image).labels or {}
            except Exception:
                labels = {}                 # not pulled yet, or no engine: the start says why
            finally:
                client.close()
            self._package = labels.get(debian.PACKAGE_LABEL)
        return self._package

    @property
    def _wrapped(self) -> Any:
        return self._container.get_wrapped_container()

    @property
    def container_id(self) -> str | None:
        if not self._created:
            return None
        if self._id is None:
            self._id = self._container.get_container_id()
        return self._id

    def _start(self) -> None:
        try:
            if not self._created:
                reap_orphans()                          # containers of killed owners
                self._created = True
                # DockerContainer.start: create and start; the readiness probe is ours
                # (Broker.wait_ready), which also notices a container that exited.
                _docker_container_class().start(self._container)
                self.container_id                       # noqa: B018 - known before any removal
            else:
                self._wrapped.start()
        except Exception as exc:
            raise BrokerError(f"RabbitMQ container from {self.image} failed to start "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                              f"last log lines:\n{self.logs(tail=30)}") from None

    def _exited(self) -> bool:
        import docker
        try:
            self._wrapped.reload()
            return self._wrapped.status in ("exited", "dead")
        except docker.errors.NotFound:
            return True
        except Exception:
            # The engine did not answer this time (busy with a dozen starts): unknown, not
            # exited; the readiness probe's deadline still ends a start that never comes.
            return False

    def _stop(self) -> None:
        self._wrapped.stop(timeout=60)

    def _pause(self) -> None:
        import docker
        deadline = time.monotonic() + PAUSE_SECONDS
        while True:
            try:
                self._wrapped.pause()
                return
            except docker.errors.APIError as exc:
                # runc's cgroup freezer gives up now and then under load ("OCI runtime pause
                # failed: unable to freeze") and leaves the container running: try again
                # (seen once in CI on a clean clone, 2026-12-02, on 4.0.5).
                if "unable to freeze" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)                 # back-off between attempts, not a synchronisation

    def _resume(self) -> None:
        self._wrapped.unpause()

    def _kill(self) -> None:
        self._wrapped.reload()
        if self._wrapped.status == "paused":               # docker kills no paused container
            self._wrapped.unpause()
            self._wrapped.reload()
        if self._wrapped.status == "running":
            self._wrapped.kill()
        self._wrapped.wait(timeout=60)

    # -- what a fault leaves to be seen ------------------------------------------------------
    def log_mark(self) -> float:
        return time.time()

    def log_since(self, mark: Any) -> str:
        try:
            return self._wrapped.logs(since=mark).decode(errors="replace")
        except Exception as exc:
            return f"(no logs: {exc})"

    def exit_status(self) -> tuple[int | None, str]:
        """The engine's record of how the container's last run ended (State.ExitCode)."""
        self._wrapped.reload()
        state = self._wrapped.attrs["State"]
        if state.get("Running") or state.get("Status") not in ("exited", "dead"):
            return None, f"the engine has container {self._wrapped.short_id} {state.get('Status')}"
        code = int(state.get("ExitCode"))
        oom = ", killed for memory" if state.get("OOMKilled") else ""
        return code, f"the engine has container {self._wrapped.short_id} exited with code {code}{oom}"

    def run_state(self) -> tuple[str, str]:
        """The engine's status of the container (``paused``: its cgroup frozen)."""
        import docker
        try:
            self._wrapped.reload()
        except docker.errors.NotFound:
            return "gone", "the engine has no such container"
        status = self._wrapped.attrs["State"]["Status"]
        words = f"the engine has container {self._wrapped.short_id} {status}"
        return {"paused": "frozen", "running": "running"}.get(status, "gone"), words

    def network_address(self) -> tuple[str, int]:
        """The container's first address on a Docker network, and RabbitMQ's port inside."""
        self._wrapped.reload()
        networks = self._wrapped.attrs["NetworkSettings"]["Networks"] or {}
        address = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), None)
        return address or self.host, 5672 if address else self.port

    def close(self) -> None:
        if self._created and self._container._container is not None:
            container_id = self.container_id or ""
            remove_until_gone("container", _remover(container_id), container_id[:12])
            self._container.get_docker_client().client.close()

    def listening_on(self) -> dict[int, set[str]]:
        self._wrapped.reload()
        bindings = self._wrapped.attrs["HostConfig"]["PortBindings"] or {}
        found: dict[int, set[str]] = {}
        for binding in bindings.values():
            for b in binding or []:
                found.setdefault(int(b["HostPort"]), set()).add(b["HostIp"] or "0.0.0.0")
        return found

    def own_leftovers(self) -> list[str]:
        if not self._created:
            return []
        import docker
        client = docker_client()
        try:
            client.containers.get(self.container_id)
            return [f"container {(self.container_id or '')[:12]}"]
        except docker.errors.NotFound:
            return []
        finally:
            client.close()

    def ctl(self, *args: str) -> str:
        cookie = ["--erlang-cookie", self.cookie] if self.cookie else []
        result = self._wrapped.exec_run(["rabbitmqctl", *cookie, *args], demux=True)
        stdout, stderr = result.output
        if result.exit_code != 0:
            last = (stderr or stdout or b"").decode(errors="replace").strip().splitlines()[-1:]
            raise BrokerError(f"rabbitmqctl {args[0]} failed: {last}")
        return (stdout or b"").decode(errors="replace")

    def logs(self, tail: int = 200) -> str:
        if not self._created or self._container._container is None:
            return "(container not created)"
        try:
            return self._wrapped.logs(tail=tail).decode(errors="replace")
        except Exception as exc:
            return f"(no logs: {exc})"

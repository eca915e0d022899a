"""The cluster: three nodes, a node's crash and return, and tasks flowing through them."""

import dataclasses
import threading

import pytest
from pytest_bdd import given, parsers, then, when

from steps import DEADLINE
from steps.queues import queue_options, run_cli
from steps.workers import worker_connections
from workqueue import Producer, QueueSpec
from workqueue.testing import scenario_vhost, wait_until
from workqueue.testing.base import BrokerError
from workqueue.testing.cluster import CLUSTER_APP_ENV
from workqueue.testing.processes import WorkerPool

#: Seconds of work per dot for cluster workers: tasks of one dot keep the flow going for a
#: few seconds after a crash, so a worker that fails over still finds work.
CLUSTER_SECONDS_PER_DOT = 0.05
#: The producer keeps at most this many tasks sent but not yet done: tasks flow through the
#: whole scenario instead of all being queued before the crash.
BACKLOG = 40
#: The clients' AMQP heartbeat: a paused node keeps its sockets open and answers nothing, so a
#: client notices it only by missed heartbeats (within two of them).
HEARTBEAT = 2
#: How long the cluster's producer waits for a confirm before it gives its connection up and
#: sends again through another node. A channel opened on a majority node in the first seconds
#: after the leader is cut off waits on the old leader until net_ticktime declares it down: its
#: confirm came 65-70 s after the cut on 4.0.5 (2026-12-02), while a channel opened 12 s after
#: it was confirmed at once. Longer than an election, shorter than that minute.
CONFIRM_TIMEOUT = 15
#: How long RabbitMQ 4.3 keeps a task checked out to a consumer on a node it lost (crashed,
#: paused, cut off) before giving it to another consumer: consumer_disconnected_timeout, 60 s by
#: default, new in 4.3 (Ra v3, rabbitmq-server#13885; 3.10 and 4.0 return such tasks at once),
#: set to 5 s for the test cluster (CLUSTER_APP_ENV). A worker on the faulted node is busy with
#: one task when the fault strikes: "done at least once" must wait past this hold. See
#: docs/rabbitmq.md.
CONSUMER_DISCONNECTED_SECONDS = CLUSTER_APP_ENV["consumer_disconnected_timeout"] / 1000
#: The faults of the When step, by its words: how the nemesis makes each and how each ends.
FAULTS = {"crashes": ("crash", "recover"), "is paused": ("pause", "resume"), "is cut off": ("partition", "heal")}


@pytest.fixture
def cluster_vhost(cluster):
    """A fresh virtual host on the cluster; any node a scenario left down is started again."""
    with scenario_vhost(cluster) as name:
        yield name


@pytest.fixture
def cluster_pools():
    """Worker pools started on the cluster; every worker still running is killed at the end."""
    pools = []
    yield pools
    for pool in pools:
        pool.close()


def rotated(members, first):
    """The members in cluster order, starting at ``first``: a client's failover order."""
    i = members.index(first)
    return members[i:] + members[:i]


@dataclasses.dataclass
class ClusterWork:
    queue: QueueSpec
    pool: WorkerPool
    first_node: dict          # worker name -> the node it connects to first

    def finished(self):
        return [t for w in self.pool for t in w.finished()]


@dataclasses.dataclass
class Flow:
    sent: list
    confirmed: list
    crashed: object           # the member the fault hit (killed, paused or cut off)
    producer_reconnections: int
    fault: str                # the When step's words for it
    failures: list            # what the producer raised (the Then steps report it)
    producer_node: str | None  # the node the producer's last connection was on
    leader_after: str | None  # the queue's leader as the other nodes named it during the fault
    address_before: str | None  # the faulted node's address on the cluster's network, as the fault began


def member_of(cluster, params):
    """The member whose address ``params`` (a client's ConnectionParameters) point at."""
    return next((m for m in cluster.members if m.port == params.port), None)


def worker_connection_nodes(cluster, vhost, name):
    """The nodes the connections of worker ``name`` are on; [] while no node's management API
    answers (a cluster busy recovering from a fault: seen on 4.0.5 under CI's load, 2026-12-02),
    so that a wait on it goes on until its deadline."""
    try:
        return sorted(c["node"] for c in worker_connections(cluster, vhost, name))
    except BrokerError:
        return []


@given("a cluster of three nodes")
def _(cluster):
    assert len(cluster.members) == 3


@given("a quorum task queue with a worker on each node", target_fixture="cluster_work")
def _(cluster, cluster_vhost, cluster_pools, declared):
    queue = QueueSpec(queue_type="quorum")
    pool = WorkerPool(cluster.urls(cluster_vhost),
                      default_options=["--seconds-per-dot", str(CLUSTER_SECONDS_PER_DOT), "--heartbeat",
                                       str(HEARTBEAT), *queue_options(queue)])
    cluster_pools.append(pool)
    first_node = {}
    for name, member in zip(("alice", "bob", "carol"), cluster.members):
        order = rotated(cluster.members, member)
        pool.start(name, url=[m.url(cluster_vhost) for m in order]).wait_consuming(DEADLINE)
        declared.mark()
        first_node[name] = member.node_name
    cluster.wait_replicated(cluster_vhost, queue.name, DEADLINE)
    return ClusterWork(queue, pool, first_node)


@when(parsers.re(r"(?P<count>\d+) tasks are sent and the queue's leader node "
                 r"(?P<fault>crashes|is paused|is cut off)(?: for (?P<seconds>\d+) seconds)? halfway"),
      target_fixture="flow")
def _(cluster, cluster_vhost, cluster_work, declared, nemesis, count, fault, seconds):
    """The fault strikes once half the tasks are done, on the node that leads the queue at that
    moment (the nemesis reads it just before), and is observed as it strikes. A crash leaves the
    node down (a later step starts it); a pause or a partition lasts ``seconds`` (the fault's
    length, as Jepsen's nemesis schedules it: not a synchronisation), then ends."""
    count = int(count)
    leader = cluster.fault_member(cluster_vhost, cluster_work.queue.name)
    # The producer is given the leader's node first: it has to fail over as well (the fault
    # strikes the node that leads when it strikes, read again then).
    params = [m.params(cluster_vhost, heartbeat=HEARTBEAT) for m in rotated(cluster.members, leader)]
    tasks = [f"task {n}." for n in range(1, count + 1)]
    confirmed, failures = [], []
    producer = Producer(params, cluster_work.queue, window=BACKLOG, confirm_timeout=CONFIRM_TIMEOUT,
                        reconnect_timeout=DEADLINE)

    def produce():
        try:
            with producer:
                for start in range(0, count, BACKLOG // 2):
                    wait_until(lambda: len(confirmed) - len(cluster_work.finished()) < BACKLOG, DEADLINE,
                               f"fewer than {BACKLOG} tasks waiting")
                    producer.publish_many(tasks[start:start + BACKLOG // 2],
                                          on_confirm=lambda body: confirmed.append(body.decode()))
        except Exception as exc:  # reported by the step below
            failures.append(exc)

    if FAULTS[fault][0] == "crash":
        declared.wait_settled()                 # before the flow: halfway would come too late
    thread = threading.Thread(target=produce, name="cluster-producer", daemon=True)
    thread.start()
    wait_until(lambda: len(cluster_work.finished()) >= count // 2 or failures, DEADLINE,
               f"{count // 2} tasks done before the fault")
    start, end = FAULTS[fault]
    addresses = {m.node_name: cluster.address_of(m) for m in cluster.members}
    leader, _observed = nemesis(cluster).strike_leader(start, cluster_vhost, cluster_work.queue.name)
    address_before = addresses[leader.node_name]
    if seconds:
        threading.Event().wait(int(seconds))
        getattr(nemesis(cluster), end)(leader)
    # Asked of the other nodes once the fault is over (during a pause or a partition their
    # management API waits on the silent node; the faulted node's own view may be stale).
    try:
        leader_after = cluster.wait_new_leader(cluster_vhost, cluster_work.queue.name, leader, DEADLINE).node_name
    except TimeoutError:
        leader_after = None
    thread.join(DEADLINE * 2)
    if thread.is_alive():
        failures.append(TimeoutError(f"the producer did not finish within {DEADLINE * 2} s"))
    node = member_of(cluster, producer.params)
    return Flow(tasks, list(confirmed), leader, producer.reconnections, fault, failures,
                node.node_name if node else None, leader_after, address_before)


@then("every confirmed task is done at least once")
def _(cluster_work, flow):
    assert not flow.failures, flow.failures
    assert sorted(flow.confirmed, key=flow.sent.index) == flow.sent, "a task was never confirmed"
    try:
        wait_until(lambda: set(flow.confirmed) <= set(cluster_work.finished()),
                   DEADLINE + CONSUMER_DISCONNECTED_SECONDS, "every confirmed task done")
    except TimeoutError as exc:
        workers = {w.name: {"consumed": w.consuming_count(), "running": w.process.poll() is None,
                            "last": w.lines[-2:], "errors": w.errors[-2:]} for w in cluster_work.pool}
        raise TimeoutError(f"{exc}; missing {sorted(set(flow.confirmed) - set(cluster_work.finished()))[:10]}; "
                           f"the workers: {workers}") from None
    assert set(cluster_work.finished()) <= set(flow.sent)


@then(parsers.re(r"the producer and the worker on the (?:crashed|paused|cut-off) node "
                 r"(?:carry|carried) on through another node"))
def _(cluster, cluster_vhost, cluster_work, flow):
    """Checked on the connections: the producer's last one was on another node, and the
    worker, once consuming again, is connected to another node (the broker says which) and
    does a task there."""
    assert not flow.failures, flow.failures
    assert flow.producer_reconnections >= 1, "the producer never lost its connection"
    assert flow.producer_node not in (None, flow.crashed.node_name), (
        f"the producer's last connection was on {flow.producer_node}, the node the fault hit")
    name = next(n for n, node in cluster_work.first_node.items() if node == flow.crashed.node_name)
    worker = cluster_work.pool[name]
    worker.wait_for(lambda _l: worker.consuming_count() >= 2, DEADLINE, "consuming again after the fault")
    nodes = wait_until(lambda: worker_connection_nodes(cluster, cluster_vhost, name), DEADLINE,
                       f"the broker to list the connection of worker {name}")
    assert flow.crashed.node_name not in nodes and len(nodes) == 1, (
        f"worker {name}'s connection is on {nodes}; the fault hit {flow.crashed.node_name}")
    done_before = len(worker.finished())
    # It is consuming through another node: more tasks, until it does one (bounded). They are
    # sent through the other nodes (a paused node would hold the connection until it timed out).
    others = [m.params(cluster_vhost) for m in rotated(cluster.members, flow.crashed)[1:]]
    with Producer(others, cluster_work.queue) as producer:
        for round_ in range(10):
            producer.publish_many(f"after the crash {round_}.{n}" for n in range(3))
            try:
                worker.wait_for(lambda _l: len(worker.finished()) > done_before, 5,
                                "a task done after the crash")
                break
            except TimeoutError:
                continue
    assert len(worker.finished()) > done_before, worker.lines[-10:]
    assert worker.process.poll() is None, worker.errors


@then("another node took over as the queue's leader")
def _(flow):
    assert flow.leader_after is not None, (f"no node other than {flow.crashed.node_name} named a new leader "
                                           f"within {DEADLINE} s")
    assert flow.leader_after != flow.crashed.node_name


@when("the crashed node starts again")
def _(cluster, flow):
    cluster.recover(flow.crashed)


@then(parsers.re(r"(?:it rejoins the cluster|the (?:paused|cut-off) node is back in the cluster)"
                 r"(?P<kept>, at the address it had,)? with a copy of the queue"))
def _(cluster, cluster_vhost, cluster_work, flow, kept):
    """``at the address it had``: its address on the cluster's network, as the system has it
    now (the namespace's interface, the Docker engine's record), is the one it had when the
    fault began (a partition in a real network does not renumber a node)."""
    assert flow.crashed.node_name in cluster.running_nodes()
    if kept:
        now = cluster.address_of(flow.crashed)
        assert flow.address_before is not None and now == flow.address_before, (
            f"{flow.crashed.node_name} was at {flow.address_before} when it was cut off and is at {now} now")
    # Twice the usual deadline: the node's member catches up from the new leader's log, and
    # on 3.10.8 under the parallel run's load that once took over a minute after a pause.
    cluster.wait_replicated(cluster_vhost, cluster_work.queue.name, 2 * DEADLINE)


@given(parsers.parse("{count:d} persistent tasks are waiting in a classic task queue on one node"),
       target_fixture="sent_tasks")
def _(cluster, cluster_vhost, declared, count):
    tasks = [f"task {n}" for n in range(1, count + 1)]
    with Producer(cluster.members[0].params(cluster_vhost), QueueSpec()) as producer:
        declared.mark()
        producer.publish_many(tasks)
    return tasks


@when("that node crashes", target_fixture="queue_home")
def _(cluster, cluster_vhost, declared, nemesis):
    declared.wait_settled()
    home, _observed = nemesis(cluster).strike_leader("crash", cluster_vhost, "task_queue")
    return home


@when("the node starts again and a worker takes the queue", target_fixture="survivor")
def _(cluster, cluster_vhost, cluster_pools, queue_home):
    cluster.recover(queue_home)
    pool = WorkerPool(cluster.urls(cluster_vhost), default_options=["--seconds-per-dot", "0"])
    cluster_pools.append(pool)
    survivor = pool.start("survivor")
    survivor.queue_at = (queue_home, cluster_vhost, "task_queue")
    return survivor


@then(parsers.parse("a task sent through the other nodes is not accepted (exit code {code:d})"))
def _(cluster, cluster_vhost, queue_home, code):
    # 3.10 returns it as unroutable, 4.x nacks it; either way the producer says so and exits 6.
    # (It must not declare the queue: on 4.x a declaration of a classic queue whose node is
    # down gets no answer at all.)
    others = [m.url(cluster_vhost) for m in rotated(cluster.members, queue_home)[1:]]
    run = run_cli("new_task", "--no-declare", "refused task", url=" ".join(others))
    assert run.returncode == code, (run.returncode, run.stderr)
    # Not accepted: no " [x] Sent" line, and one error line that says why (returned as
    # unroutable on 3.x, nacked on 4.x), naming the task.
    assert run.stdout == "", run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "'refused task'" in lines[0], lines
    assert "unroutable" in lines[0] or "nacked" in lines[0], lines[0]
    assert cluster.password not in run.stderr


@given("a worker given every node, the first node first", target_fixture="lone_worker")
def _(cluster, cluster_vhost, cluster_pools):
    pool = WorkerPool(cluster.urls(cluster_vhost), default_options=["--seconds-per-dot", "0", "--heartbeat",
                                                                    str(HEARTBEAT)])
    cluster_pools.append(pool)
    worker = pool.start("dave")
    worker.wait_consuming(DEADLINE)
    return worker


@when("the broker closes that worker's connection")
def _(cluster, cluster_vhost, lone_worker):
    """As an operator closes it (management API): the node stays up and reachable."""
    [connection] = wait_until(lambda: worker_connections(cluster, cluster_vhost, lone_worker.name), DEADLINE,
                              f"the broker to list the connection of worker {lone_worker.name}")
    cluster.management.close_connection(connection["name"])


@then(parsers.parse("the worker consumes again, through the {which} node"))
def _(cluster, cluster_vhost, lone_worker, which):
    index = {"first": 0, "second": 1, "third": 2}[which]
    lone_worker.wait_for(lambda _l: lone_worker.consuming_count() >= 2, DEADLINE, "consuming again")
    expected = [cluster.members[index].node_name]
    try:
        wait_until(lambda: worker_connection_nodes(cluster, cluster_vhost, lone_worker.name) == expected,
                   DEADLINE, f"the worker's connection on {expected[0]}")
    except TimeoutError:
        raise AssertionError(f"the worker's connection is on "
                             f"{worker_connection_nodes(cluster, cluster_vhost, lone_worker.name)}, "
                             f"not on the {which} node {expected[0]}") from None
    assert lone_worker.process.poll() is None, lone_worker.errors

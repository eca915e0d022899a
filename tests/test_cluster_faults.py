"""Jepsen's faults on the cluster: the quorum queue's leader node paused, and cut off by a
network partition (its link dropped: a node cluster's nodes each have a network namespace and
an address of their own, a container cluster's nodes a veth on the Docker bridge)."""

import pytest
from pytest_bdd import scenarios

scenarios("cluster/faults.feature")


@pytest.mark.cluster
@pytest.mark.broker_control
def test_a_fault_on_the_leader_is_never_aimed_at_a_follower(cluster, cluster_vhost, monkeypatch):
    """The nemesis checks, just before it strikes, that the node it aims at leads the queue: a
    target that names a follower (the edit that swaps the leader for a follower) is refused
    before anything is struck; and a partition that cuts nothing off is not seen as one."""
    from workqueue import Producer, QueueSpec
    from workqueue.testing.nemesis import FaultNotObserved, Nemesis

    queue = QueueSpec(queue_type="quorum")
    with Producer(cluster.members[0].params(cluster_vhost), queue) as producer:
        producer.publish_many(["one"])
    cluster.wait_replicated(cluster_vhost, queue.name, 60)
    leader = cluster.fault_member(cluster_vhost, queue.name)
    follower = next(m for m in cluster.members if m is not leader)
    monkeypatch.setattr(cluster, "fault_member", lambda vhost, name, timeout=60: follower)
    with pytest.raises(FaultNotObserved, match="while .* leads it") as refused:
        Nemesis(cluster).strike_leader("crash", cluster_vhost, queue.name)
    assert refused.value.struck is False and follower.is_ready() and leader.is_ready()
    monkeypatch.setattr(cluster, "partition", lambda member: None)      # a partition that does nothing
    with pytest.raises(FaultNotObserved, match="did not cut off a running node"):
        Nemesis(cluster).partition(follower)
